package transport

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
)

// Router holds a service's routes in one place. It names each request's
// span after its route pattern, and answers unknown paths (404) and wrong
// methods (405, with Allow) in problem+json like every other error.
type Router struct {
	mux   *http.ServeMux
	paths *http.ServeMux // path-only patterns, to tell 405 from 404

	mu      sync.RWMutex
	methods map[string][]string // path pattern -> allowed methods
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	r := &Router{mux: http.NewServeMux(), paths: http.NewServeMux(), methods: map[string][]string{}}
	r.paths.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		WriteError(req.Context(), errs.E(errs.NotFound, "no_route", "no route for %s %s", truncate(req.Method, 16), truncate(req.URL.Path, 100)), w)
	})
	r.mux.Handle("/", r.paths)
	return r
}

// Handle registers h for method and path, e.g. ("GET", "/products/{sku}").
func (r *Router) Handle(method, path string, h http.Handler) {
	pattern := method + " " + path
	r.mux.Handle(pattern, observability.Route(pattern, h))

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.methods[path]; !seen {
		r.paths.HandleFunc(path, func(w http.ResponseWriter, req *http.Request) {
			r.mu.RLock()
			allowed := strings.Join(r.methods[path], ", ")
			r.mu.RUnlock()
			w.Header().Set("Allow", allowed)
			WriteError(req.Context(), errs.E(errs.NotAllowed, "method_not_allowed",
				"%s is not allowed on %s; allowed: %s", truncate(req.Method, 16), truncate(req.URL.Path, 100), allowed), w)
		})
	}
	r.methods[path] = append(r.methods[path], method)
	slices.Sort(r.methods[path])
}

func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.ServeHTTP(w, req)
}
