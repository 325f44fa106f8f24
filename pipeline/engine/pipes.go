package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/busbar/busbar/pipeline/pipes"
	"github.com/busbar/busbar/pipeline/transport"
)

// pipeSet is the config's running pipes (pipeline/pipes): sources straight
// into one target each, beside the buses, with only their dead-letter
// queues on the transport.
type pipeSet struct {
	mu      sync.Mutex
	running []*pipes.Pipe
}

// startInputs starts what feeds the engine once its routers run: the
// sources, then the pipes. On failure the engine is shut down.
func (e *Engine) startInputs(ctx context.Context) error {
	if err := e.startSources(ctx); err != nil {
		return err
	}
	for _, pc := range e.cfg.Pipes {
		if err := e.tr.CreateTopic(ctx, pipes.DLQTopic(pc.Name), transport.TopicOptions{MaxAge: dlqRetention}); err != nil {
			e.Shutdown(context.Background())
			return fmt.Errorf("pipe %q: %w", pc.Name, err)
		}
		p, err := pipes.Start(ctx, pipes.Options{Pipe: pc, DeadLetters: e.pub, Logger: e.log, DrainTimeout: e.opts.DrainTimeout})
		if err != nil {
			e.Shutdown(context.Background())
			return err
		}
		e.pipes.mu.Lock()
		e.pipes.running = append(e.pipes.running, p)
		e.pipes.mu.Unlock()
	}
	return nil
}

// stopInputs stops the pipes and the sources, all at once: each delivers
// and commits what it read, up to the drain timeout, or leaves it to be
// read again at the next start.
func (e *Engine) stopInputs() {
	e.pipes.mu.Lock()
	list := e.pipes.running
	e.pipes.running = nil
	e.pipes.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() { p.Close() })
	}
	e.stopSources()
	wg.Wait()
}

// Pipes returns the running pipes.
func (e *Engine) Pipes() []*pipes.Pipe {
	e.pipes.mu.Lock()
	defer e.pipes.mu.Unlock()
	return append([]*pipes.Pipe(nil), e.pipes.running...)
}
