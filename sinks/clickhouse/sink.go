package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
)

func init() {
	sinks.Register(config.TypeClickHouse, func(t config.Target) (sinks.Sink, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := Open(ctx, OptionsFromTarget(t))
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", t.ID, err)
		}
		return s, nil
	})
}

// Options configure a Sink. OptionsFromTarget makes them from a target's
// config; a pipe builds them itself.
type Options struct {
	// DSN: clickhouse://user:pass@host:9000/db or http://host:8123/db.
	DSN string
	// Table: name or db.name (default "events").
	Table string
	// CreateTable creates the events table when missing (not for Columns).
	CreateTable bool
	// DataType of a created table's data column: "json" or "string".
	DataType string
	// TTL of a created table's rows; 0 keeps them.
	TTL time.Duration
	// AsyncInsert uses server-side async inserts.
	AsyncInsert bool
	// Columns map a custom table; empty means the events table.
	Columns []config.ClickHouseColumn
	// Batch limits; Callers should be the number of concurrent Deliver
	// callers (the target's concurrency).
	Batch batch.Limits
	// InsertTimeout bounds one insert attempt (default 30s).
	InsertTimeout time.Duration
	// Logger for warnings (default slog.Default()).
	Logger *slog.Logger
}

// OptionsFromTarget turns a validated, defaulted clickhouse target into
// Options.
func OptionsFromTarget(t config.Target) Options {
	c := t.ClickHouse
	o := Options{
		DSN:         c.DSN,
		Table:       c.TableName(),
		CreateTable: c.CreatesTable() && len(c.Columns) == 0,
		DataType:    c.DataColumnType(),
		TTL:         c.TTL.D(),
		AsyncInsert: c.AsyncInsert,
		Columns:     c.Columns,
		Batch: batch.Limits{
			MaxRows:     t.Batch.MaxRows,
			MaxBytes:    int(t.Batch.MaxBytes),
			MaxWait:     t.Batch.MaxWait.D(),
			MaxInFlight: t.Batch.MaxInFlight,
			Callers:     t.Concurrency,
		},
		InsertTimeout: max(t.Timeout.D(), 30*time.Second),
	}
	return o
}

// Sink writes events to a ClickHouse table in batches. Deliver is safe for
// concurrent use and returns once the event's batch is committed.
type Sink struct {
	conn    driver.Conn
	opts    Options
	log     *slog.Logger
	table   string // database.table, quoted as needed
	insert  string // INSERT INTO ... (columns)
	mapping *mapping
	b       *batch.Batcher[row]
}

// row is one event ready for a batch: one of its pointers is set. It is
// two words because the batcher appends rows (and regrows their slice)
// under its lock.
type row struct {
	ev *eventRow  // events table
	m  *mappedRow // custom table
}

// mappedRow is an event as the values of a custom table's columns.
type mappedRow struct {
	id   string
	vals []any
}

// id is the event's id, for the deduplication token.
func (r row) id() string {
	if r.ev != nil {
		return r.ev.id
	}
	return r.m.id
}

var _ sinks.Sink = (*Sink)(nil)

// Open connects, checks the server and the table (creating the events table
// when allowed), and starts batching. Its errors say what to fix:
// unreachable, authentication, a missing table, columns that do not match.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Table == "" {
		o.Table = config.DefaultClickHouseTable
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 30 * time.Second
	}
	opts, err := ch.ParseDSN(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dsn: %v", redactErr(err, o.DSN))
	}
	o.Batch.Logger = o.Logger
	if o.Batch.MaxInFlight <= 0 {
		o.Batch.MaxInFlight = batch.DefaultMaxInFlight
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	opts.MaxOpenConns = o.Batch.MaxInFlight + 4
	opts.MaxIdleConns = o.Batch.MaxInFlight + 2
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, explain(err, opts)
	}
	s := &Sink{conn: conn, opts: o, log: o.Logger}
	if err := s.check(ctx, opts); err != nil {
		conn.Close()
		return nil, err
	}
	flush := s.flushEvents
	if s.mapping != nil {
		flush = s.flushMapped
	}
	s.b = batch.New(o.Batch, flush)
	return s, nil
}

// check is the healthcheck at start.
func (s *Sink) check(ctx context.Context, opts *ch.Options) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.conn.Ping(pctx); err != nil {
		return explain(err, opts)
	}
	db, name := splitTable(s.opts.Table, opts.Auth.Database)
	s.table = quoteIdent(db) + "." + quoteIdent(name)
	fq := db + "." + name
	cols, err := describe(ctx, s.conn, db, name)
	if err != nil {
		return explain(err, opts)
	}
	if len(s.opts.Columns) > 0 {
		if len(cols) == 0 {
			return fmt.Errorf("table %s does not exist: create it with the columns you map (busbar creates only the default events table)", fq)
		}
		m, err := newMapping(fq, s.opts.Columns, cols)
		if err != nil {
			return err
		}
		s.mapping = m
		names := make([]string, len(m.cols))
		for i, c := range m.cols {
			names[i] = quoteIdent(c.name)
		}
		s.insert = "INSERT INTO " + s.table + " (" + strings.Join(names, ", ") + ")"
		return nil
	}
	if len(cols) == 0 {
		if !s.opts.CreateTable {
			return fmt.Errorf("table %s does not exist and create_table is false: create it (DDL in docs/clickhouse.md) or allow busbar to", fq)
		}
		dt := "JSON"
		if s.opts.DataType == config.ClickHouseDataString {
			dt = "String"
		}
		if err := s.conn.Exec(ctx, EventsDDL(s.table, dt, s.opts.TTL)); err != nil {
			return fmt.Errorf("creating table %s: %w", fq, explain(err, opts))
		}
		s.log.Info("created the ClickHouse events table", "table", fq, "data_type", dt)
		if cols, err = describe(ctx, s.conn, db, name); err != nil {
			return explain(err, opts)
		}
	}
	if _, err := checkEventsTable(fq, cols); err != nil {
		return err
	}
	names := make([]string, len(eventColumns))
	for i, c := range eventColumns {
		names[i] = c.name
	}
	s.insert = "INSERT INTO " + s.table + " (" + strings.Join(names, ", ") + ")"
	s.warnDedup(ctx, db, name)
	return nil
}

// warnDedup warns when a non-replicated table does not remember insert
// tokens, so a retried batch could be written twice.
func (s *Sink) warnDedup(ctx context.Context, db, name string) {
	var engine, create string
	err := s.conn.QueryRow(ctx, "SELECT engine, create_table_query FROM system.tables WHERE database = ? AND name = ?", db, name).Scan(&engine, &create)
	if err != nil || strings.HasPrefix(engine, "Replicated") || !strings.HasSuffix(engine, "MergeTree") {
		return
	}
	if !strings.Contains(create, "non_replicated_deduplication_window") {
		s.log.Warn("ClickHouse table does not deduplicate retried inserts; a batch retried after a lost reply may be stored twice",
			"table", db+"."+name, "fix", fmt.Sprintf("ALTER TABLE %s.%s MODIFY SETTING non_replicated_deduplication_window = %d", db, name, DedupWindow))
	}
}

// Deliver converts one event and waits until its batch is committed. An
// event that cannot be stored (not a CloudEvent, a value that does not fit
// its column) fails permanently, alone.
func (s *Sink) Deliver(ctx context.Context, d sinks.Delivery) error {
	r, size, err := s.convert(d)
	if err != nil {
		return sinks.Permanent(err)
	}
	return s.b.Add(ctx, r, size)
}

// DeliverBatch hands many events over at once — the way a pipe (a Kafka
// topic straight into ClickHouse, without a bus) drives the sink — writes
// them in as few inserts as the limits allow, and returns each event's
// result: nil, a permanent error (that event can never be stored), or a
// retryable one. It returns when every event has its result or ctx ends.
func (s *Sink) DeliverBatch(ctx context.Context, ds []sinks.Delivery) []error {
	errs := make([]error, len(ds))
	tickets := make([]batch.Ticket, len(ds))
	has := make([]bool, len(ds))
	var sl *slab
	if s.mapping == nil {
		sl = newSlab(ds)
	}
	for i, d := range ds {
		var r row
		var size int
		var err error
		if sl != nil {
			r, size, err = sl.convert(i, d)
		} else {
			r, size, err = s.convert(d)
		}
		if err != nil {
			errs[i] = sinks.Permanent(err)
			continue
		}
		t, err := s.b.Submit(ctx, r, size)
		if err != nil {
			errs[i] = err
			continue
		}
		tickets[i], has[i] = t, true
	}
	s.b.Flush()
	for i, t := range tickets {
		if has[i] {
			errs[i] = t.Wait(ctx)
		}
	}
	if sl != nil {
		sl.release(tickets, has)
	}
	return errs
}

// Flush writes the open batch now instead of waiting for its limits.
func (s *Sink) Flush() { s.b.Flush() }

// Close writes what is batched (one attempt) and closes the connections.
func (s *Sink) Close() error {
	err := s.b.Close()
	return errors.Join(err, s.conn.Close())
}

// convert turns a delivery into a row and its size for the batch limits.
func (s *Sink) convert(d sinks.Delivery) (row, int, error) {
	if s.mapping != nil {
		src := d.Event
		if d.Body != nil {
			src = d.Body
		}
		vals, err := s.mapping.row(src)
		if err != nil {
			return row{}, 0, err
		}
		return row{m: &mappedRow{id: d.EventID, vals: vals}}, len(src), nil
	}
	ev, err := parseEvent(d.Event, time.Time{})
	if err != nil {
		return row{}, 0, err
	}
	if !ev.hasBus {
		ev.bus = d.Bus
	}
	return row{ev: ev}, len(d.Event), nil
}

// slab holds the rows of the events of one DeliverBatch call, and one copy
// of all their text that the rows' strings are substrings of: two
// allocations for the call instead of two for each event. Slabs are pooled
// when every row's batch is settled: 25 MB of fresh memory per 50,000
// events cost more in page faults than the parsing itself.
type slab struct {
	rows []eventRow
	text []byte // written once, event by event, not changed until pooled
	off  int    // where the next event's text goes in text
}

var slabPool sync.Pool // *slab

func newSlab(ds []sinks.Delivery) *slab {
	n := 0
	for _, d := range ds {
		n += len(d.Event)
	}
	sl, _ := slabPool.Get().(*slab)
	if sl == nil {
		sl = new(slab)
	}
	if cap(sl.rows) < len(ds) {
		sl.rows = make([]eventRow, len(ds))
	}
	if cap(sl.text) < n {
		sl.text = make([]byte, n)
	}
	sl.rows, sl.text, sl.off = sl.rows[:len(ds)], sl.text[:n], 0
	return sl
}

// release pools the slab once nothing can read it any more: every row
// submitted has its result (its batch was written and let go of it). When
// ctx ended first, some may still be in flight: the slab is left to the
// GC then.
func (sl *slab) release(tickets []batch.Ticket, has []bool) {
	for i, t := range tickets {
		if !has[i] {
			continue
		}
		select {
		case <-t.Done():
		default:
			return
		}
	}
	clear(sl.rows) // parse wants zero rows; and let go of extension maps
	slabPool.Put(sl)
}

// convert is Sink.convert of ds[i] (d) for the events table, into the
// slab. It must be called for each i in order. The event is copied and
// parsed at once, while it is in the cache, and parsed from its copy.
func (sl *slab) convert(i int, d sinks.Delivery) (row, int, error) {
	b := sl.text[sl.off : sl.off+len(d.Event) : sl.off+len(d.Event)]
	copy(b, d.Event)
	sl.off += len(d.Event)
	ev := &sl.rows[i]
	if err := ev.parse(b, unsafe.String(unsafe.SliceData(b), len(b)), time.Time{}); err != nil {
		return row{}, 0, err
	}
	if !ev.hasBus {
		ev.bus = d.Bus
	}
	return row{ev: ev}, len(d.Event), nil
}

// token is the insert_deduplication_token of a batch: a digest of its
// events' ids in order, so a retry of the same batch carries the same one.
func token(b *batch.Batch[row]) string {
	h := sha256.New()
	n := 0
	// The ids go to the hash in chunks: h.Write([]byte(id)) copied each.
	buf := make([]byte, 0, 8<<10)
	for i := range b.Items {
		if b.Failed(i) {
			continue
		}
		id := b.Items[i].id()
		if len(buf)+len(id)+1 > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = append(buf, id...)
		buf = append(buf, 0)
		n++
	}
	h.Write(buf)
	return fmt.Sprintf("busbar-%d-%s", n, hex.EncodeToString(h.Sum(nil)[:16]))
}

// insertCtx carries the settings of one insert attempt.
func (s *Sink) insertCtx(ctx context.Context, tok string) context.Context {
	set := ch.Settings{
		"insert_deduplicate":              1,
		"insert_deduplication_token":      tok,
		"type_json_skip_duplicated_paths": 1,
	}
	if s.opts.AsyncInsert {
		set["async_insert"] = 1
		set["wait_for_async_insert"] = 1
		set["async_insert_deduplicate"] = 1
	}
	return ch.Context(ctx, ch.WithSettings(set))
}

// flushEvents writes a batch to the events table, column by column.
func (s *Sink) flushEvents(ctx context.Context, b *batch.Batch[row]) error {
	n := 0
	for i := range b.Items {
		if !b.Failed(i) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	c := colsPool.Get().(*eventCols)
	defer c.release()
	c.grow(n)
	for i := range b.Items {
		if !b.Failed(i) {
			c.add(b.Items[i].ev)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.InsertTimeout)
	defer cancel()
	bt, err := s.conn.PrepareBatch(s.insertCtx(ctx, token(b)), s.insert)
	if err != nil {
		return classify(err)
	}
	defer bt.Close()
	cols := c.columns()
	for i, col := range bt.Columns() {
		if _, ok := col.(*chcolumn.LowCardinality); ok {
			if ss, ok := cols[i].([]string); ok {
				cols[i] = c.boxed(i, ss)
			}
		}
	}
	for i, col := range cols {
		if err := bt.Column(i).Append(col); err != nil {
			return batch.Split(fmt.Errorf("column %s: %w", eventColumns[i].name, err))
		}
	}
	return classify(bt.Send())
}

// eventCols are the columns of one insert into the events table, in
// eventColumns order. They are pooled: a batch of 50,000 rows needs ~10 MB
// of column slices, and the driver copies them at Append, so the next batch
// can reuse them.
type eventCols struct {
	ids, sources, types, subjects []string
	times, ingests                []time.Time
	buses, specs, cts, schemas    []string
	exts                          []map[string]string
	datas                         []string
	boxes                         map[int][]any // see boxed
}

var colsPool = sync.Pool{New: func() any { return new(eventCols) }}

// noExt stands for an event without extensions (the driver wants a map).
var noExt = map[string]string{}

// grow makes room for n more rows in every column, so that filling them
// does not regrow them (the pool loses its columns at each GC).
func (c *eventCols) grow(n int) {
	for _, s := range []*[]string{&c.ids, &c.sources, &c.types, &c.subjects, &c.buses, &c.specs, &c.cts, &c.schemas, &c.datas} {
		*s = slices.Grow(*s, n)
	}
	c.times = slices.Grow(c.times, n)
	c.ingests = slices.Grow(c.ingests, n)
	c.exts = slices.Grow(c.exts, n)
}

func (c *eventCols) add(e *eventRow) {
	c.ids = append(c.ids, e.id)
	c.sources = append(c.sources, e.source)
	c.types = append(c.types, e.typ)
	c.subjects = append(c.subjects, e.subject)
	c.times = append(c.times, e.time)
	c.ingests = append(c.ingests, e.ingest)
	c.buses = append(c.buses, e.bus)
	c.specs = append(c.specs, e.specversion)
	c.cts = append(c.cts, e.contentType)
	c.schemas = append(c.schemas, e.schema)
	if e.ext == nil {
		c.exts = append(c.exts, noExt)
	} else {
		c.exts = append(c.exts, e.ext)
	}
	c.datas = append(c.datas, e.data)
}

func (c *eventCols) columns() []any {
	return []any{c.ids, c.sources, c.types, c.subjects, c.times, c.ingests, c.buses, c.specs, c.cts, c.schemas, c.exts, c.datas}
}

// boxed is a string column as []any, for a LowCardinality column: the
// driver takes those by reflection, one value at a time as an interface,
// which boxed a copy of each string. Here a value equal to one of the last
// few boxes reuses it (sources, types and buses repeat).
func (c *eventCols) boxed(k int, ss []string) []any {
	if c.boxes == nil {
		c.boxes = make(map[int][]any)
	}
	out := slices.Grow(c.boxes[k][:0], len(ss))
	var recent [8]struct {
		s string
		v any
	}
	n, next := 0, 0
rows:
	for _, s := range ss {
		for j := range n {
			if recent[j].s == s {
				out = append(out, recent[j].v)
				continue rows
			}
		}
		v := any(s)
		recent[next].s, recent[next].v = s, v
		next = (next + 1) % len(recent)
		n = min(n+1, len(recent))
		out = append(out, v)
	}
	c.boxes[k] = out
	return out
}

// release empties the columns (letting go of the events' text) and pools
// them again.
func (c *eventCols) release() {
	for _, s := range []*[]string{&c.ids, &c.sources, &c.types, &c.subjects, &c.buses, &c.specs, &c.cts, &c.schemas, &c.datas} {
		clear(*s)
		*s = (*s)[:0]
	}
	clear(c.exts)
	c.times, c.ingests, c.exts = c.times[:0], c.ingests[:0], c.exts[:0]
	for k, b := range c.boxes {
		clear(b)
		c.boxes[k] = b[:0]
	}
	colsPool.Put(c)
}

// flushMapped writes a batch to a custom table, row by row.
func (s *Sink) flushMapped(ctx context.Context, b *batch.Batch[row]) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.InsertTimeout)
	defer cancel()
	bt, err := s.conn.PrepareBatch(s.insertCtx(ctx, token(b)), s.insert)
	if err != nil {
		return classify(err)
	}
	defer bt.Close()
	n := 0
	for i := range b.Items {
		if b.Failed(i) {
			continue
		}
		if err := bt.Append(b.Items[i].m.vals...); err != nil {
			// The driver's batch is spoilt now: find the row by splitting.
			return batch.Split(err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return classify(bt.Send())
}

// dataErrors are ClickHouse error codes that blame the rows, not the
// server: the batch is split until the rows that cause them stand alone.
var dataErrors = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	26:  true, // CANNOT_PARSE_QUOTED_STRING
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	117: true, // INCORRECT_DATA
	131: true, // TOO_LARGE_STRING_SIZE
}

// classify decides what a failed insert means: bad rows (split the batch)
// or a server or network problem (retry the same batch).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ex *ch.Exception
	if errors.As(err, &ex) && dataErrors[ex.Code] {
		return batch.Split(fmt.Errorf("ClickHouse rejected the row: %s (code %d)", ex.Message, ex.Code))
	}
	return fmt.Errorf("clickhouse insert: %w", err)
}

// redactErr hides the DSN's password in an error text.
func redactErr(err error, dsn string) error {
	msg := err.Error()
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if c := strings.Index(dsn[i+3:at], ":"); c >= 0 {
				pw := dsn[i+3+c+1 : at]
				if pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
				}
			}
		}
	}
	return errors.New(msg)
}
