package server

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"time"
)

// Go's profiles under /debug/pprof/, in the paths and formats of
// net/http/pprof, so that "go tool pprof http://127.0.0.1:9464/debug/pprof/heap"
// works. net/http/pprof itself is not imported: its init registers the same
// handlers on http.DefaultServeMux, which would expose them on the public
// listener of any program that embeds this package and serves the default
// mux.

// maxProfileDuration bounds ?seconds= of a CPU profile or trace, so that one
// request cannot keep the profiler (of which there is one per process) busy
// for long. The metrics listener's write timeout is derived from it.
const maxProfileDuration = 60 * time.Second

// registerPprof adds the profile endpoints to mux.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/{$}", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.HandleFunc("GET /debug/pprof/trace", pprofTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", pprofNamed)
}

// pprofIndex lists what can be fetched.
func pprofIndex(w http.ResponseWriter, _ *http.Request) {
	var names []string
	for _, p := range pprof.Profiles() {
		names = append(names, fmt.Sprintf("%s (%d)", p.Name(), p.Count()))
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "Profiles (current count), each at /debug/pprof/NAME (?debug=1 for text):")
	for _, n := range names {
		fmt.Fprintln(w, "  "+n)
	}
	fmt.Fprintf(w, "CPU profile: /debug/pprof/profile?seconds=30 (at most %s)\n", maxProfileDuration)
	fmt.Fprintf(w, "Execution trace: /debug/pprof/trace?seconds=1 (at most %s)\n", maxProfileDuration)
}

// pprofNamed writes one runtime/pprof profile: heap, allocs, goroutine,
// block, mutex, threadcreate.
func pprofNamed(w http.ResponseWriter, r *http.Request) {
	p := pprof.Lookup(r.PathValue("name"))
	if p == nil {
		http.Error(w, "unknown profile; see /debug/pprof/", http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if p.Name() == "heap" && r.URL.Query().Get("gc") != "" {
		// Without a collection the heap profile shows garbage as live.
		runtime.GC()
	}
	w.Header().Set("Cache-Control", "no-store")
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", p.Name()))
	}
	// An error here is a failed write to the client, after the headers:
	// nothing is left to tell it.
	_ = p.WriteTo(w, debug)
}

// pprofCPU records a CPU profile for ?seconds= (default 30).
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	d, ok := profileDuration(w, r, 30*time.Second)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		// The usual cause is another profile already running.
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start CPU profile: "+err.Error(), http.StatusConflict)
		return
	}
	waitOrDone(r, d)
	pprof.StopCPUProfile()
}

// pprofTrace records an execution trace for ?seconds= (default 1).
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	d, ok := profileDuration(w, r, time.Second)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start trace: "+err.Error(), http.StatusConflict)
		return
	}
	waitOrDone(r, d)
	trace.Stop()
}

// profileDuration reads ?seconds=, answering 400 itself when it is not a
// whole number of seconds from 1 to maxProfileDuration.
func profileDuration(w http.ResponseWriter, r *http.Request, def time.Duration) (time.Duration, bool) {
	s := r.URL.Query().Get("seconds")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || time.Duration(n)*time.Second > maxProfileDuration {
		http.Error(w, fmt.Sprintf("seconds must be a whole number from 1 to %d", int(maxProfileDuration/time.Second)), http.StatusBadRequest)
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// waitOrDone waits d, or less when the client goes away or the listener
// shuts down (ServeMetrics cancels every request's context then), so that a
// profile never holds up shutdown.
func waitOrDone(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
