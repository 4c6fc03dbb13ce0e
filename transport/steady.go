package transport

import (
	"slices"
	"sync"
	"time"

	"github.com/go-kit/kit/sd"
)

// DefaultEmptyGrace is how long a caller keeps its known instances of a
// service after discovery suddenly reports none.
const DefaultEmptyGrace = 10 * time.Second

// steadyInstancer passes on discovery's instance lists, except that it
// holds back a sudden "no instances at all" for up to grace. A Consul
// agent that restarts forgets every registration (in dev mode, or when it
// loses its data) and reports every service empty until each instance
// registers again; callers should keep calling the instances they know
// rather than fail every request in that gap. If the service is still
// empty after grace, that is passed on: it really is gone. Any non-empty
// list passes at once, so instances that die are still dropped as soon as
// their checks fail.
type steadyInstancer struct {
	src    sd.Instancer
	grace  time.Duration
	events chan sd.Event

	mu      sync.Mutex
	subs    map[chan<- sd.Event]struct{}
	state   sd.Event
	known   []string    // the last non-empty list
	pending *time.Timer // passes on an empty list after grace
}

func newSteadyInstancer(src sd.Instancer, grace time.Duration) *steadyInstancer {
	s := &steadyInstancer{src: src, grace: grace, events: make(chan sd.Event, 1), subs: map[chan<- sd.Event]struct{}{}}
	first := make(chan struct{})
	go func() {
		once := sync.OnceFunc(func() { close(first) })
		defer once()
		for ev := range s.events {
			s.update(ev)
			once()
		}
	}()
	// The source sends its current state on Register; take it in before
	// anyone registers here, so they start from what discovery knows.
	src.Register(s.events)
	<-first
	return s
}

func (s *steadyInstancer) update(ev sd.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Err == nil && len(ev.Instances) == 0 && len(s.known) > 0 {
		if s.pending == nil {
			s.pending = time.AfterFunc(s.grace, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.pending, s.known = nil, nil
				s.broadcast(sd.Event{Instances: []string{}})
			})
		}
		return
	}
	if s.pending != nil {
		s.pending.Stop()
		s.pending = nil
	}
	if ev.Err == nil {
		s.known = slices.Clone(ev.Instances)
	}
	s.broadcast(ev)
}

// broadcast sends ev to every subscriber; called with mu held.
func (s *steadyInstancer) broadcast(ev sd.Event) {
	s.state = ev
	for ch := range s.subs {
		ch <- ev
	}
}

// Register implements sd.Instancer: ch gets the current state at once.
func (s *steadyInstancer) Register(ch chan<- sd.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[ch] = struct{}{}
	ch <- s.state
}

// Deregister implements sd.Instancer.
func (s *steadyInstancer) Deregister(ch chan<- sd.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, ch)
}

// Stop detaches from the source; the source itself is stopped by its owner.
func (s *steadyInstancer) Stop() {
	s.src.Deregister(s.events)
	close(s.events)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		s.pending.Stop()
	}
}
