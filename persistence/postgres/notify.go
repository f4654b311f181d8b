package postgres

// Keeping what this process caches fresh when other processes write the database, and sweeping
// expired rows.

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// configChannel is the channel on which the database announces a change of what nodes cache:
// the config_changed trigger (migrations/0001_init.sql) notifies it with the kind that changed
// (config, keyrings, vendor, mds) when the changing transaction commits.
const configChannel = "webauthnd_config"

// listen keeps a connection of its own LISTENing on configChannel and refreshes on every
// notification, and every refreshEvery in case one was missed. When the connection is lost it
// connects again, and then refreshes everything: what changed meanwhile was not announced to it.
// While it is not listening, the config cache serves nothing and maintain refreshes through the
// pool.
func (s *Store) listen(ctx context.Context) {
	defer s.done.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, s.listenConfig)
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+configChannel); err == nil {
				err = s.refresh(ctx, conn, true)
			}
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("cannot listen for configuration changes; connecting again", zap.Duration("in", backoff),
				zap.String("error", s.secret.text(err.Error())))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		s.listening.Store(true)
		err = s.wait(ctx, conn)
		s.listening.Store(false)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lost the connection that listens for configuration changes; connecting again",
			zap.String("error", s.secret.text(err.Error())))
	}
}

// wait refreshes on each notification that reaches conn, and when none came for refreshEvery,
// until conn fails or ctx ends.
func (s *Store) wait(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, s.opts.refreshEvery)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return err
		case conn.IsClosed():
			return errors.New("the connection closed")
		}
		// A notification, or none for refreshEvery: either way, read the versions. One read
		// answers a burst of notifications.
		if err := s.refresh(ctx, conn, false); err != nil {
			return err
		}
	}
}

// refresh reads the config versions and the MDS generation, and invalidates what changed since
// the last read (everything, with all).
func (s *Store) refresh(ctx context.Context, q querier, all bool) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	rows, err := q.Query(ctx, `SELECT kind, version FROM config_versions
		UNION ALL SELECT 'mds generation', coalesce((SELECT generation FROM mds_blob), 0)`)
	if err != nil {
		return err
	}
	read := map[string]int64{}
	for rows.Next() {
		var (
			kind    string
			version int64
		)
		if err := rows.Scan(&kind, &version); err != nil {
			rows.Close()
			return err
		}
		read[kind] = version
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for kind, v := range read {
		last, seen := s.versions[kind]
		if !all && seen && last == v {
			continue
		}
		s.versions[kind] = v
		switch kind {
		case "config":
			s.clearConfig()
		case "vendor":
			s.vendorGen.Add(1)
		case "keyrings":
			s.keyringGen.Add(1)
		case "mds generation":
			// Only a generation the database changed is taken: this process's own import set
			// its generation already, and a read that began before that import committed must
			// not set it back.
			s.mdsGen.Store(uint64(v))
		}
	}
	return nil
}

// maintain sweeps expired ceremonies and replay records every sweepEvery, and refreshes through
// the pool every refreshEvery while the listener is not connected.
func (s *Store) maintain(ctx context.Context) {
	defer s.done.Done()
	refresh := time.NewTicker(s.opts.refreshEvery)
	defer refresh.Stop()
	sweep := time.NewTicker(s.opts.sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if s.listening.Load() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, s.opts.refreshEvery)
			if err := s.refresh(rctx, s.pool, false); err != nil && ctx.Err() == nil {
				s.log.Warn("cannot read the configuration versions", zap.String("error", s.secret.text(err.Error())))
			}
			cancel()
		case <-sweep.C:
			sctx, cancel := context.WithTimeout(ctx, s.opts.sweepEvery)
			if err := s.sweep(sctx); err != nil && ctx.Err() == nil {
				s.log.Warn("cannot sweep expired ceremonies and replay records", zap.String("error", s.secret.text(err.Error())))
			}
			cancel()
		}
	}
}

// sweep deletes the ceremonies and replay records that expired: none of them is read once
// expired, and every node sweeps, so a node that stopped leaves nothing behind.
func (s *Store) sweep(ctx context.Context) error {
	var ceremonies, replays int64
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM ceremonies WHERE expires < now()`).Exec(func(tag pgconn.CommandTag) error {
		ceremonies = tag.RowsAffected()
		return nil
	})
	b.Queue(`DELETE FROM replays WHERE expires < now()`).Exec(func(tag pgconn.CommandTag) error {
		replays = tag.RowsAffected()
		return nil
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if ceremonies+replays > 0 {
		s.log.Debug("swept expired rows", zap.Int64("ceremonies", ceremonies), zap.Int64("replays", replays))
	}
	return nil
}
