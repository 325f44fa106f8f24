package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type putFlags struct {
	url     string
	bus     string
	batch   int
	timeout time.Duration
}

func newPutEventsCmd() *cobra.Command {
	f := &putFlags{}
	cmd := &cobra.Command{
		Use:   "put-events [FILE|-]",
		Short: "Publish events from a file or stdin to a running busbar",
		Long: `put-events reads events and publishes them to a bus of a running busbar.

The input (a file, or stdin when FILE is - or absent) holds either
  - CloudEvents in structured form: one JSON object, a JSON array, or one per
    line (NDJSON); sent in CloudEvents batch mode, or
  - an EventBridge PutEvents body {"Entries":[…]}, or entries with
    Source/DetailType/Detail (array or NDJSON); sent to the put-events endpoint.
Events go in batches of --batch. Every event that failed is reported with its
reason; the exit status is 1 when any failed.`,
		Example: `  busbar put-events examples/retail/events.json
  echo '{"specversion":"1.0","source":"erp","type":"order.created","data":{"orderId":"o-1"}}' | busbar put-events --bus retail`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			name := "stdin"
			if len(args) == 1 && args[0] != "-" {
				fh, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer fh.Close()
				in, name = fh, args[0]
			}
			return putEvents(cmd.OutOrStdout(), cmd.ErrOrStderr(), in, name, f)
		},
	}
	cmd.Flags().StringVar(&f.url, "url", "http://127.0.0.1:8080", "base URL of busbar's API")
	cmd.Flags().StringVar(&f.bus, "bus", "default", "bus to publish to")
	cmd.Flags().IntVar(&f.batch, "batch", 100, "events per request (at most the server's ingest limit)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of one request")
	return cmd
}

// readEvents splits the input into raw JSON objects and says whether they are
// PutEvents entries.
func readEvents(in io.Reader, name string) ([]json.RawMessage, bool, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, false, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, false, fmt.Errorf("%s: no events", name)
	}
	var items []json.RawMessage
	switch data[0] {
	case '[':
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
	case '{':
		dec := json.NewDecoder(bytes.NewReader(data))
		for n := 1; ; n++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				break
			} else if err != nil {
				return nil, false, fmt.Errorf("%s: object %d: %w", name, n, err)
			}
			items = append(items, raw)
		}
		if len(items) == 1 {
			var body struct {
				Entries []json.RawMessage `json:"Entries"`
			}
			if json.Unmarshal(items[0], &body) == nil && body.Entries != nil {
				return body.Entries, true, nil
			}
		}
	default:
		return nil, false, fmt.Errorf("%s: expected a JSON object, array or NDJSON", name)
	}
	if len(items) == 0 {
		return nil, false, fmt.Errorf("%s: no events", name)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(items[0], &probe); err != nil {
		return nil, false, fmt.Errorf("%s: event 1 is not a JSON object", name)
	}
	_, hasDetailType := probe["DetailType"]
	return items, hasDetailType, nil
}

func putEvents(stdout, stderr io.Writer, in io.Reader, name string, f *putFlags) error {
	items, isPut, err := readEvents(in, name)
	if err != nil {
		return err
	}
	if f.batch < 1 {
		f.batch = 1
	}
	client := &http.Client{Timeout: f.timeout}
	base := strings.TrimRight(f.url, "/") + "/v1/buses/" + f.bus
	var ok, failed int
	for start := 0; start < len(items); start += f.batch {
		end := min(start+f.batch, len(items))
		chunk := items[start:end]
		var n, bad int
		var err error
		if isPut {
			n, bad, err = sendPutEvents(client, base+"/put-events", chunk, start, stderr)
		} else {
			n, bad, err = sendBatch(client, base+"/events", chunk, start, stderr)
		}
		if err != nil {
			return fmt.Errorf("events %d–%d: %w (%d published before)", start+1, end, err, ok)
		}
		ok += n
		failed += bad
		if len(items) > f.batch {
			fmt.Fprintf(stderr, "\r%d/%d sent", end, len(items))
		}
	}
	if len(items) > f.batch {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "published %d events to bus %q", ok, f.bus)
	if failed > 0 {
		fmt.Fprintf(stdout, "; %d failed\n", failed)
		return &exitError{code: 1, err: errors.New("some events were not published")}
	}
	fmt.Fprintln(stdout)
	return nil
}

func postJSON(client *http.Client, url, ctype string, body []byte) (int, []byte, error) {
	resp, err := client.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

func sendBatch(client *http.Client, url string, chunk []json.RawMessage, offset int, stderr io.Writer) (int, int, error) {
	body, _ := json.Marshal(chunk)
	status, resp, err := postJSON(client, url, "application/cloudevents-batch+json", body)
	if err != nil {
		return 0, 0, err
	}
	if status == http.StatusOK {
		return len(chunk), 0, nil
	}
	var e struct {
		Error struct {
			Code, Message string
			Entries       []struct {
				Index   int
				Message string
			}
		}
	}
	if json.Unmarshal(resp, &e) != nil {
		return 0, 0, fmt.Errorf("HTTP %d: %s", status, bytes.TrimSpace(resp))
	}
	if len(e.Error.Entries) == 0 {
		return 0, 0, fmt.Errorf("HTTP %d %s: %s", status, e.Error.Code, e.Error.Message)
	}
	for _, x := range e.Error.Entries {
		fmt.Fprintf(stderr, "event %d: %s\n", offset+x.Index+1, x.Message)
	}
	fmt.Fprintf(stderr, "events %d–%d not published: %s\n", offset+1, offset+len(chunk), e.Error.Message)
	return 0, len(chunk), nil
}

func sendPutEvents(client *http.Client, url string, chunk []json.RawMessage, offset int, stderr io.Writer) (int, int, error) {
	body, _ := json.Marshal(map[string]any{"Entries": chunk})
	status, resp, err := postJSON(client, url, "application/json", body)
	if err != nil {
		return 0, 0, err
	}
	var out struct {
		FailedEntryCount int
		Entries          []struct{ EventId, ErrorCode, ErrorMessage string }
	}
	if status != http.StatusOK || json.Unmarshal(resp, &out) != nil {
		return 0, 0, fmt.Errorf("HTTP %d: %s", status, bytes.TrimSpace(resp))
	}
	for i, e := range out.Entries {
		if e.ErrorCode != "" {
			fmt.Fprintf(stderr, "entry %d: %s: %s\n", offset+i+1, e.ErrorCode, e.ErrorMessage)
		}
	}
	return len(chunk) - out.FailedEntryCount, out.FailedEntryCount, nil
}
