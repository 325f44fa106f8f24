package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// report gathers one run's figures.
type report struct {
	o          options
	goVersion  string
	loadBefore string
	loadAfter  string

	phase     *phaseResult
	atSendEnd recvStats
	final     recvStats
	drainedAt bool

	busCPU, busCPUSend time.Duration
	busPct, busPctSend float64
	genCPU, recvCPU    time.Duration
	genPct, recvPct    float64
	rssStart, rssEnd   int64
	hwm                int64
	dataBytes          int64
	goroutines         int
	shutdown           time.Duration
	logWarn, logErr    int
	logSample          []string

	queues *queueWatch // -queues

	// machine-wide CPU over the measurement (send + drain)
	machineBusy, machineWall time.Duration
	othersCPU                time.Duration // machineBusy − busbar − generator − receiver
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// thousands formats n with thin separators: 12,345.
func thousands(f float64) string {
	n := int64(f + 0.5)
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *report) print(w io.Writer) {
	p, o := r.phase, r.o
	sendWall := p.end.Sub(p.start)
	acc := p.accepted.Load()
	accRate := float64(acc) / sendWall.Seconds()

	var e2e hist
	e2e.load(r.final.Hist, r.final.Max)
	deliverWall := time.Duration(r.final.Last - p.start.UnixNano())
	delRate := 0.0
	if deliverWall > 0 {
		delRate = float64(r.final.Unique) / deliverWall.Seconds()
	}
	missing := int64(acc) - int64(r.final.Unique)
	backlog := int64(acc) - int64(r.atSendEnd.Unique)
	usPerEvent := 0.0
	if r.final.Unique > 0 {
		usPerEvent = float64(r.busCPU.Microseconds()) / float64(r.final.Unique)
	}
	offered := "max (closed loop)"
	if o.rate > 0 {
		offered = thousands(o.rate) + " ev/s (open loop)"
	}
	mode := "single event per request (application/cloudevents+json)"
	if o.batch > 1 {
		mode = fmt.Sprintf("batches of %d (application/cloudevents-batch+json)", o.batch)
	}
	server := "binary " + o.busbar
	if o.inprocess {
		server = "in-process engine (-inprocess)"
	}

	fmt.Fprintf(w, "\n== %s ==\n", o.scenario())
	target := fmt.Sprintf("target concurrency %d", o.targetConcurrency)
	if o.targetBatch > 0 {
		conc := "default"
		if o.targetConcurrency > 0 {
			conc = fmt.Sprint(o.targetConcurrency)
		}
		target = fmt.Sprintf("target batch max_rows %d, concurrency %s", o.targetBatch, conc)
	}
	fmt.Fprintf(w, "busbar:      %s, transport %s, %s, %s\n", server, o.transport, target, r.goVersion)
	fmt.Fprintf(w, "load:        %s, %d connections (%s client), offered %s, %s measured after %s warm-up\n", mode, o.conns, o.client, offered, o.duration, o.warmup)
	fmt.Fprintf(w, "load avg:    before %s, after %s\n", r.loadBefore, r.loadAfter)
	fmt.Fprintf(w, "ingest:      %d events accepted in %d requests over %s = %s events/s; %d requests failed: %s\n",
		acc, p.requests.Load(), sendWall.Round(time.Millisecond), thousands(accRate), p.failed.Load(), p.errorSummary())
	if o.rate > 0 {
		fmt.Fprintf(w, "             max start lag behind schedule %s; %d events never sent\n", ms(time.Duration(p.maxLag.Load()))+" ms", p.skipped.Load())
	}
	fmt.Fprintf(w, "             request latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms\n",
		ms(p.ingest.quantile(.5)), ms(p.ingest.quantile(.9)), ms(p.ingest.quantile(.99)), ms(p.ingest.quantile(.999)), ms(p.ingest.maxValue()))
	drained := "all delivered"
	if !r.drainedAt {
		drained = fmt.Sprintf("NOT all delivered within -drain %s", o.drain)
	}
	fmt.Fprintf(w, "delivery:    %d unique events delivered (%s) in %s = %s events/s; backlog when sending stopped %d\n",
		r.final.Unique, drained, deliverWall.Round(time.Millisecond), thousands(delRate), backlog)
	if tail := time.Duration(r.final.Last - p.end.UnixNano()); backlog*100 > int64(acc) && tail > 0 {
		during := float64(r.atSendEnd.Unique) / sendWall.Seconds()
		fmt.Fprintf(w, "             while sending %s events/s delivered; the backlog then drained at %s events/s (%s)\n",
			thousands(during), thousands(float64(int64(r.final.Unique)-int64(r.atSendEnd.Unique))/tail.Seconds()), tail.Round(time.Millisecond))
	}
	if o.targetBatch > 0 && r.final.Requests > 0 {
		fmt.Fprintf(w, "             in %d target requests after the warm-up, ~%.1f events per request (batch max_rows %d)\n",
			r.final.Requests, float64(r.final.Received)/float64(r.final.Requests), o.targetBatch)
	}
	fmt.Fprintf(w, "             duplicates %d, missing %d, bad requests %d, unknown ids %d\n", r.final.Dups, missing, r.final.Bad, r.final.Unknown)
	fmt.Fprintf(w, "             end-to-end latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms\n",
		ms(e2e.quantile(.5)), ms(e2e.quantile(.9)), ms(e2e.quantile(.99)), ms(e2e.quantile(.999)), ms(e2e.maxValue()))
	if q := r.queues; q != nil {
		q.mu.Lock()
		peak := q.peak
		q.mu.Unlock()
		fmt.Fprintf(w, "queues:      unacked per consumer when sending stopped: %s\n", q.line(q.atEnd))
		fmt.Fprintf(w, "             peak: %s\n", q.line(peak))
	}
	fmt.Fprintf(w, "cpu:         busbar %.0f%% of one core until all delivered (%.0f%% while sending), %.1f µs CPU per event; generator %.0f%%; receiver %.0f%%\n",
		r.busPct, r.busPctSend, usPerEvent, r.genPct, r.recvPct)
	others := r.othersPct()
	fmt.Fprintf(w, "machine:     %.0f%% of %d cores busy; other processes used %.0f%% of one core%s\n",
		100*r.machineBusy.Seconds()/r.machineWall.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU(), others, busyNote(others))
	fmt.Fprintf(w, "memory:      busbar RSS %d MiB at start of measurement, %d MiB at end, peak %d MiB; data dir %d MiB",
		r.rssStart>>10, r.rssEnd>>10, r.hwm>>10, r.dataBytes>>20)
	if r.goroutines > 0 {
		fmt.Fprintf(w, "; %d goroutines when sending stopped", r.goroutines)
	}
	fmt.Fprintln(w)
	sd := r.shutdown.Round(time.Millisecond).String()
	if r.shutdown < 0 {
		sd = "did not stop within 45s: killed"
	}
	fmt.Fprintf(w, "busbar log:  %d warnings, %d errors; graceful shutdown %s\n", r.logWarn, r.logErr, sd)
	for _, l := range r.logSample {
		fmt.Fprintf(w, "             %s\n", l)
	}
	if o.cpuprofile != "" {
		fmt.Fprintf(w, "profile:     go tool pprof -top %s\n", o.cpuprofile)
	}
	if o.perf != "" {
		fmt.Fprintf(w, "perf:        perf report -i %s --no-children --sort dso,sym\n", o.perf)
	}

	errs := fmt.Sprint(p.failed.Load())
	if !r.drainedAt || missing != 0 || r.final.Dups != 0 {
		errs += fmt.Sprintf("; %d missing, %d dup", missing, r.final.Dups)
	}
	fmt.Fprintln(w, "\n| scenario | conns | accepted ev/s | delivered ev/s | ingest p50 / p99 / max ms | end-to-end p50 / p99 / max ms | failed req | busbar CPU | µs CPU/event | gen / recv CPU | others' CPU | load avg before → after |")
	fmt.Fprintln(w, "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |")
	fmt.Fprintf(w, "| %s | %d | %s | %s | %s / %s / %s | %s / %s / %s | %s | %.0f%% | %.0f | %.0f%% / %.0f%% | %.0f%% | %s → %s |\n",
		o.scenario(), o.conns, thousands(accRate), thousands(delRate),
		ms(p.ingest.quantile(.5)), ms(p.ingest.quantile(.99)), ms(p.ingest.maxValue()),
		ms(e2e.quantile(.5)), ms(e2e.quantile(.99)), ms(e2e.maxValue()),
		errs, r.busPct, usPerEvent, r.genPct, r.recvPct, others, r.loadBefore, r.loadAfter)
}

// busyThreshold is the CPU share of one core used by other processes
// during a measurement above which its figures are suspect.
const busyThreshold = 10

// othersPct is the CPU other processes used during the measurement, in %
// of one core. It includes kernel threads working for busbar (block I/O
// with sync=always), and /proc's 10 ms ticks make it ±1–2 %.
func (r *report) othersPct() float64 {
	if r.machineWall <= 0 {
		return 0
	}
	return max(0, 100*r.othersCPU.Seconds()/r.machineWall.Seconds())
}

func (r *report) acceptedRate() float64 {
	return float64(r.phase.accepted.Load()) / r.phase.end.Sub(r.phase.start).Seconds()
}

func busyNote(othersPct float64) string {
	if othersPct >= busyThreshold {
		return " — MEASURED UNDER LOAD: figures are low, re-run on an idle machine (-wait-idle 10m)"
	}
	return ""
}
