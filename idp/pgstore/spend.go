package pgstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// spendFamily moves the family $1 read at version $2 (its row's xmin, which every update of
// the row changes) on to the token $3 — no row when the row is no longer that version — and
// indexSpent then indexes the token $1 for the family $2 if the family moved on to it. Sent
// together, they are one implicit transaction. (One statement, the UPDATE in a WITH of the
// INSERT, costs PostgreSQL more: measured in BENCHMARKS.md.) spendFamilies and indexSpents are
// the same for several families at once, from arrays; spendFamilies returns the (family, token)
// pairs it moved, one per family even when a family is in the arrays twice.
const (
	spendFamily   = `UPDATE refresh_families SET current_token = $3 WHERE id = $1 AND xmin = $2`
	indexSpent    = `INSERT INTO refresh_tokens (token_hash, family_id) SELECT $1, $2 WHERE EXISTS (SELECT FROM refresh_families WHERE id = $2 AND current_token = $1)`
	spendFamilies = `UPDATE refresh_families f SET current_token = v.token
		FROM unnest($1::text[], $2::xid[], $3::text[]) AS v(id, version, token)
		WHERE f.id = v.id COLLATE "C" AND f.xmin = v.version
		RETURNING f.id, f.current_token`
	indexSpents = `INSERT INTO refresh_tokens (token_hash, family_id)
		SELECT v.token, v.id FROM unnest($1::text[], $2::text[]) AS v(token, id)
		JOIN refresh_families f ON f.id = v.id COLLATE "C" AND f.current_token = v.token COLLATE "C"`
)

// spendGroup sends the writes of concurrent refreshes (refreshOptimistic's compare-and-swap of
// a family's row, and the new token's index) to PostgreSQL together: one round trip, one
// transaction and one WAL flush for all the refreshes that queued while the previous group
// was in flight. As boltfile's group commit for bbolt, it has no timer: a lone refresh is
// written at once. A refresh whose family's row is no longer the version it read misses alone
// and the others' writes stand; a group that fails as a whole (a token hash indexed already,
// a deadlock with another replica's group, a lost connection) sends each of its refreshes to
// write alone, where the error is its own.
type spendGroup struct {
	pool    *pgxpool.Pool
	mu      sync.Mutex
	pending []*spend
	running bool // a committer goroutine is draining pending
}

type spend struct {
	family, token string
	version       uint32
	done          chan spendResult
}

type spendResult struct {
	moved bool
	err   error
}

// maxSpends bounds the refreshes of one group.
const maxSpends = 256

// errAlone tells a refresh its group failed: write alone.
var errAlone = errors.New("pgstore: write alone")

// do moves the family read at version on to token and indexes token, in a group with the
// refreshes queued beside it. moved is false when the family's row is no longer that version;
// nothing is written then.
func (g *spendGroup) do(ctx context.Context, family string, version uint32, token string) (moved bool, err error) {
	c := &spend{family: family, token: token, version: version, done: make(chan spendResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.commit()
	}
	g.mu.Unlock()
	if r := <-c.done; r.err != errAlone {
		return r.moved, r.err
	}
	return spendAlone(ctx, g.pool, family, version, token)
}

// commit writes the queued refreshes, group after group, until none is queued.
func (g *spendGroup) commit() {
	for {
		g.mu.Lock()
		calls := g.pending
		if len(calls) > maxSpends {
			calls, g.pending = calls[:maxSpends:maxSpends], calls[maxSpends:]
		} else {
			g.pending = nil
		}
		if len(calls) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.run(calls)
	}
}

// run writes calls in one batch. The committer writes for many callers, so it answers to none
// of their contexts: the statement timeout (pgdb.Config) bounds it.
func (g *spendGroup) run(calls []*spend) {
	ctx := context.Background()
	if len(calls) == 1 {
		c := calls[0]
		moved, err := spendAlone(ctx, g.pool, c.family, c.version, c.token)
		c.done <- spendResult{moved, err}
		return
	}
	// In the families' order, so two replicas' groups lock the rows they share in one order
	// (the UPDATE walks the arrays, looking each id up in the primary key) rather than
	// deadlock on them; a deadlock all the same fails the group, and each writes alone.
	slices.SortStableFunc(calls, func(a, b *spend) int { return strings.Compare(a.family, b.family) })
	ids, versions, tokens := make([]string, len(calls)), make([]uint32, len(calls)), make([]string, len(calls))
	for i, c := range calls {
		ids[i], versions[i], tokens[i] = c.family, c.version, c.token
	}
	moved := make(map[[2]string]bool, len(calls))
	err := g.pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		b.Queue(spendFamilies, ids, versions, tokens)
		b.Queue(indexSpents, tokens, ids)
		br := conn.SendBatch(ctx, b)
		rows, err := br.Query()
		if err == nil {
			var pair [2]string
			_, err = pgx.ForEachRow(rows, []any{&pair[0], &pair[1]}, func() error {
				moved[pair] = true
				return nil
			})
		}
		if err == nil {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	for _, c := range calls {
		if err != nil {
			c.done <- spendResult{err: errAlone}
		} else {
			c.done <- spendResult{moved: moved[[2]string{c.family, c.token}]}
		}
	}
}

// spendAlone is one refresh's write in a batch of its own.
func spendAlone(ctx context.Context, pool *pgxpool.Pool, family string, version uint32, token string) (moved bool, err error) {
	err = pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		b.Queue(spendFamily, family, version, token)
		b.Queue(indexSpent, token, family)
		br := conn.SendBatch(ctx, b)
		tag, err := br.Exec()
		if err == nil {
			moved = tag.RowsAffected() == 1
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return moved, err
}
