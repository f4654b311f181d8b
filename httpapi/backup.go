package httpapi

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// handleBackup streams a consistent snapshot of the store (the Badger store's Backup) to
// `webauthnd backup`. Once the body has started, a failure can only cut the stream: the
// format's end marker then lacks, and the client refuses the file.
func handleBackup(a AdminDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Backup == nil {
			writeError(w, a.Log, messages.Errorf(messages.CodeNotFound,
				"this server's store has no webauthnd backup: back PostgreSQL up with pg_dump or point-in-time recovery (PITR)"))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		// The answer is the stream: its line is written when the stream has ended, before the
		// response does.
		err := a.Backup(w)
		a.record(r, messages.AuditEvent{Event: messages.AuditBackup, Outcome: messages.AuditOutcome(err)})
		if err != nil {
			a.Log.Error("backup failed", zap.Error(err))
			panic(http.ErrAbortHandler) // close the connection mid-stream, without a clean end
		}
	})
}
