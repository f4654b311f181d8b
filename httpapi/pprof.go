package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/julienschmidt/httprouter"

	"github.com/webauthnd/webauthnd/messages"
)

// Importing net/http/pprof registers its handlers on http.DefaultServeMux. This service serves
// profiles on the admin socket only (handlePprof), never on a listener that falls back to the
// default mux (a nil Handler), so the default mux is replaced by an empty one: what the import
// registered is unreachable. No server of webauthnd uses the default mux.
func init() { http.DefaultServeMux = http.NewServeMux() }

// PprofPath is where the admin socket serves Go's profiles (`webauthnd profile`, and
// `go tool pprof` or curl through the socket).
const PprofPath = "/debug/pprof/"

// handlePprof serves net/http/pprof under PprofPath: the index, every named profile (heap,
// goroutine, allocs, block, mutex, threadcreate, with ?debug= and ?seconds= as pprof takes
// them), the CPU profile, the execution trace and symbol lookups. One catch-all route, because
// httprouter v1.3 cannot have /debug/pprof/profile beside /debug/pprof/:name.
//
// The command line (/debug/pprof/cmdline) is not served: it is the server's configuration, not
// a profile, it can name files and a database (a password on it is refused, but a user or a
// host is not), and profiles are files that get passed around. The start log has the settings.
func handlePprof(a AdminDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch name := httprouter.ParamsFromContext(r.Context()).ByName("name"); name {
		case "/", "":
			pprof.Index(w, r)
		case "/cmdline":
			writeError(w, a.Log, messages.Errorf(messages.CodeNotFound, "the command line is not served; the server's start log has its settings"))
		case "/profile":
			pprof.Profile(w, r)
		case "/trace":
			pprof.Trace(w, r)
		case "/symbol":
			pprof.Symbol(w, r)
		default:
			// pprof.Index serves the named profile of its path (heap, goroutine, …), or 404.
			pprof.Index(w, r)
		}
	})
}
