package http

import (
	"context"
	"errors"
	"fmt"
	nethttp "net/http"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
)

// An http target with batch: (config.Target.BatchesRequests) sends many
// events in one POST. The dispatcher's concurrent Deliver calls hand their
// events to a sinks/batch batcher and wait; a batch is one request:
//
//   - whole CloudEvents in CloudEvents batch mode: a JSON array of
//     structured events, Content-Type application/cloudevents-batch+json;
//   - the bodies of a JSON transform as a JSON array, application/json.
//
// The answer is every event's: 2xx delivers them all; 408, 429, 5xx and
// network errors come back to each Deliver as the same retryable error
// (with Retry-After), so the dispatcher retries each event under the
// target's policy, in whatever batch it then lands; any other answer is
// permanent for all and dead-letters each. A 413 splits the batch in
// halves, down to single events, which fail alone. The batcher itself never
// retries: retry, backoff and dead-lettering stay the dispatcher's.
// A destination's rate limit counts requests, so a batch counts once.

// ContentTypeBatch is the content type of a CloudEvents batch.
const ContentTypeBatch = "application/cloudevents-batch+json; charset=utf-8"

// contentTypeJSONArray is the content type of a batch of transformed bodies.
const contentTypeJSONArray = "application/json; charset=utf-8"

// item is one element of a batch's array.
type item struct {
	elem []byte // a structured CloudEvent or a JSON body
	body bool   // a transform's body, not a CloudEvent
}

// startBatching checks that the target can batch and starts its batcher.
// config refuses such a target already; this guards configs built in code.
func (s *Sink) startBatching(t config.Target) error {
	switch {
	case s.chat != nil:
		return errors.New("a chat robot takes one message per request")
	case s.binary:
		return errors.New("CloudEvents batch mode has no binary form")
	case s.noBody:
		return fmt.Errorf("a %s sends no body", s.method)
	case !s.url.static():
		return errors.New("the URL holds placeholders, and a batch is one request for many events")
	}
	for _, ps := range [][]param{s.headers, s.query} {
		for _, p := range ps {
			if !p.val.static() {
				return fmt.Errorf("%s holds placeholders, and a batch is one request for many events", p.name)
			}
		}
	}
	b := t.Batch
	rows, inFlight := orInt(b.MaxRows, config.DefaultHTTPBatchMaxRows), orInt(b.MaxInFlight, config.DefaultHTTPBatchMaxInFlight)
	callers := t.Concurrency
	if callers <= 0 {
		callers = config.HTTPBatchConcurrency(rows, inFlight)
	}
	wait := b.MaxWait.D()
	if wait <= 0 {
		wait = config.DefaultHTTPBatchMaxWait
	}
	s.batch = batch.New(batch.Limits{
		MaxRows:     rows,
		MaxBytes:    orInt(int(b.MaxBytes), config.DefaultHTTPBatchMaxBytes),
		MaxWait:     wait,
		MaxInFlight: inFlight,
		Callers:     callers,
	}, s.flush)
	return nil
}

func orInt(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// deliverBatched adds one event to the open batch and waits for the answer
// to its batch's request. An event whose transform made something other
// than JSON cannot stand in a JSON array: it fails alone, permanently.
func (s *Sink) deliverBatched(ctx context.Context, d sinks.Delivery) error {
	it := item{elem: d.Event}
	if d.Body != nil {
		if !isJSON(d.ContentType) {
			return sinks.Permanent(fmt.Errorf("event %s: the transform made %s, and a batch is a JSON array: only JSON bodies can be sent in batches", d.EventID, d.ContentType))
		}
		it = item{elem: d.Body, body: true}
	}
	if s.conn != nil {
		it.elem = s.conn.mergeBody(it.elem)
	}
	return s.batch.Add(ctx, it, len(it.elem)+1)
}

// flush sends one batch and gives each of its events the answer.
func (s *Sink) flush(ctx context.Context, b *batch.Batch[item]) error {
	buf := make([]byte, 0, b.Bytes+2)
	buf = append(buf, '[')
	ctype, n := ContentTypeBatch, 0
	for i, it := range b.Items {
		if b.Failed(i) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it.elem...)
		if it.body {
			ctype = contentTypeJSONArray
		}
		n++
	}
	if n == 0 {
		return nil
	}
	buf = append(buf, ']')
	err := s.send(ctx, func(ctx context.Context) (*nethttp.Request, error) { return s.batchRequest(ctx, buf, ctype) })
	if err == nil {
		return nil
	}
	err = fmt.Errorf("batch of %d events: %w", n, err)
	if n > 1 && sinks.StatusOf(err) == nethttp.StatusRequestEntityTooLarge {
		return batch.Split(err)
	}
	// Every event gets the answer; none is retried here, so the target's
	// retry policy (backoff, Retry-After, max attempts, dead letters)
	// applies to each as it does without batching.
	for i := range b.Items {
		if !b.Failed(i) {
			b.Fail(i, err)
		}
	}
	return nil
}

// batchRequest builds the request of one batch. The URL, query and headers
// hold no placeholders (startBatching checked), so no event fills them.
func (s *Sink) batchRequest(ctx context.Context, body []byte, ctype string) (*nethttp.Request, error) {
	u, err := s.targetURL(nil, "")
	if err != nil {
		return nil, err
	}
	if err := s.addQuery(u, nil); err != nil {
		return nil, err
	}
	return s.newRequest(ctx, u, body, ctype, nil)
}
