package httpapi

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// AdminDeps is what the admin API uses: a writer that groups its writes with the ceremonies'.
type AdminDeps struct {
	Write func(op persistence.Op) (any, error)
	Log   *zap.Logger
}

// NewAdminServer returns the management API that `webauthnd community` and `webauthnd license`
// use while a server holds the store. Serve it only on the data directory's Unix socket (mode
// 0600, peer uid checked): it has no other authentication.
func NewAdminServer(a AdminDeps) http.Handler {
	return withRequestLog(a.Log, limitBody(adminRoutes(a)))
}

// handleWrite decodes an operation of type T from the body and applies it.
func handleWrite[T persistence.Op](a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		var op T
		if err := decode(r, &op); err != nil {
			return err
		}
		v, err := a.Write(op)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, v)
		return nil
	})
}
