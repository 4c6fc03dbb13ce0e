package transport

import (
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
)

// source is a discovery source the test drives by hand.
type source struct {
	mu   sync.Mutex
	subs map[chan<- sd.Event]bool
}

func (s *source) Register(ch chan<- sd.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs = map[chan<- sd.Event]bool{}
	}
	s.subs[ch] = true
	ch <- sd.Event{} // like go-kit's instancers: the current state at once
}

func (s *source) Deregister(ch chan<- sd.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, ch)
}

func (s *source) Stop() {}

func (s *source) send(instances ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		ch <- sd.Event{Instances: instances}
	}
}

func next(t *testing.T, ch <-chan sd.Event, within time.Duration) (sd.Event, bool) {
	t.Helper()
	select {
	case ev := <-ch:
		return ev, true
	case <-time.After(within):
		return sd.Event{}, false
	}
}

func TestASuddenlyEmptyServiceKeepsItsInstancesForAGracePeriod(t *testing.T) {
	src := &source{}
	steady := newSteadyInstancer(src, 300*time.Millisecond)
	defer steady.Stop()
	got := make(chan sd.Event, 10)
	steady.Register(got)
	<-got // the initial (empty) state

	src.send("a:1", "b:1")
	if ev, ok := next(t, got, time.Second); !ok || len(ev.Instances) != 2 {
		t.Fatalf("non-empty list: %+v, %v; want it passed on", ev, ok)
	}
	// The agent restarts: empty, then the instances register again.
	src.send()
	if ev, ok := next(t, got, 100*time.Millisecond); ok {
		t.Fatalf("empty list passed on at once: %+v", ev)
	}
	src.send("a:1")
	if ev, ok := next(t, got, time.Second); !ok || len(ev.Instances) != 1 {
		t.Fatalf("instances back: %+v, %v", ev, ok)
	}
	// Really gone: passed on once the grace is over.
	src.send()
	ev, ok := next(t, got, 2*time.Second)
	if !ok || len(ev.Instances) != 0 {
		t.Fatalf("after the grace: %+v, %v; want the empty list", ev, ok)
	}
}
