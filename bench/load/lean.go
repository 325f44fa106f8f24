package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// poster sends one request body to the ingest endpoint and returns the
// status and, for a failure, the start of the answer.
type poster interface {
	post(body []byte, ctype string) (status int, msg []byte, err error)
	close()
}

// newPoster returns the client one generator goroutine uses: a lean
// HTTP/1.1 connection of its own (-client lean), or the shared net/http
// client (-client nethttp).
func (d *driver) newPoster() poster {
	if d.o.client == "nethttp" {
		return netHTTPPoster{d}
	}
	return &leanPoster{url: d.eventsURL}
}

type netHTTPPoster struct{ d *driver }

func (n netHTTPPoster) post(body []byte, ctype string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, n.d.eventsURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := n.d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	var msg []byte
	if resp.StatusCode != http.StatusOK {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, msg, nil
}

func (netHTTPPoster) close() {}

// leanPoster speaks just enough HTTP/1.1 over one keep-alive connection:
// it writes the request in one call and parses the answer with
// http.ReadResponse. It costs the generator a fraction of net/http's
// client (no per-request goroutine hand-offs), leaving more of the shared
// cores to the busbar under test — the way wrk would, but with the
// generator's own event bodies and latency bookkeeping.
type leanPoster struct {
	url  string
	host string
	path string
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func (l *leanPoster) dial() error {
	if l.host == "" {
		u, err := url.Parse(l.url)
		if err != nil {
			return err
		}
		l.host, l.path = u.Host, u.RequestURI()
	}
	c, err := net.DialTimeout("tcp", l.host, 5*time.Second)
	if err != nil {
		return err
	}
	l.conn, l.br = c, bufio.NewReaderSize(c, 4096)
	return nil
}

func (l *leanPoster) post(body []byte, ctype string) (int, []byte, error) {
	status, msg, err := l.try(body, ctype)
	if err != nil && l.conn == nil {
		// The server closed an idle connection: one fresh attempt.
		status, msg, err = l.try(body, ctype)
	}
	return status, msg, err
}

func (l *leanPoster) try(body []byte, ctype string) (int, []byte, error) {
	if l.conn == nil {
		if err := l.dial(); err != nil {
			return 0, nil, err
		}
	}
	b := l.buf[:0]
	b = append(b, "POST "...)
	b = append(b, l.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, l.host...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, ctype...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	l.buf = b
	_ = l.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := l.conn.Write(b); err != nil {
		l.close()
		return 0, nil, err
	}
	resp, err := http.ReadResponse(l.br, nil)
	if err != nil {
		l.close()
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	var msg []byte
	if resp.StatusCode != http.StatusOK {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		l.close()
	}
	return resp.StatusCode, msg, nil
}

func (l *leanPoster) close() {
	if l.conn != nil {
		l.conn.Close()
		l.conn, l.br = nil, nil
	}
}
