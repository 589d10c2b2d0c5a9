package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"jwtidp/shared/groupq"
)

// spendFamilies moves each family of $1 read at the version of $2 (its row's xmin, which every
// update of the row changes) on to the token of $3, and returns the (family, token) pairs it
// moved: a family whose row is no longer that version is not moved, nor one whose row another
// transaction has locked (SKIP LOCKED: the group does not wait on any one family's lock, as
// everyone's refreshes would wait with it), nor one in the arrays twice more than once.
// indexSpents then indexes the tokens of the families that moved on to them. Sent together,
// they are one implicit transaction. The rows are locked in the primary key's order, so two
// replicas' groups do not deadlock on the rows they share. (The UPDATE in a WITH of the INSERT,
// one statement, costs PostgreSQL more: measured in BENCHMARKS.md.)
const (
	spendFamilies = `UPDATE refresh_families f SET current_token = v.token
		FROM unnest($1::text[], $2::xid[], $3::text[]) AS v(id, version, token)
		WHERE f.id = v.id COLLATE "C" AND f.xmin = v.version
			AND f.id IN (SELECT l.id FROM refresh_families l WHERE l.id = ANY($1) ORDER BY l.id FOR UPDATE SKIP LOCKED)
		RETURNING f.id, f.current_token`
	indexSpents = `INSERT INTO refresh_tokens (token_hash, family_id)
		SELECT v.token, v.id FROM unnest($1::text[], $2::text[]) AS v(token, id)
		JOIN refresh_families f ON f.id = v.id COLLATE "C" AND f.current_token = v.token COLLATE "C"`
)

// spendGroup sends the writes of concurrent refreshes (refreshOptimistic's compare-and-swap of
// a family's row, and the new token's index) to PostgreSQL together: one round trip, one
// transaction and one WAL flush for all the refreshes that queued while the previous group
// was in flight. As boltfile's group commit for bbolt and readGroup's reads (all are a
// groupq.Queue), it has no timer: a lone refresh is written at once. A refresh whose
// family's row is no longer the version it read, or is locked, misses alone and the others'
// writes stand. A group the database refused as a whole (a token hash indexed already, say)
// was rolled back, so each of its refreshes writes again in a group of its own, where the
// error is its own; a group whose outcome is unknown (the connection lost after it was sent)
// is each refresh's error, as a lone write's would be — written again, a group that had
// committed would read as token reuse.
type spendGroup struct {
	pool *pgxpool.Pool
	q    groupq.Queue[spend, spendResult]
	hold func() // tests: called as each group starts
}

type spend struct {
	family, token string
	version       uint32
}

type spendResult struct {
	moved bool
	err   error
}

// maxSpends bounds the refreshes of one group.
const maxSpends = 256

// errAlone tells a refresh its group was refused: write again, alone.
var errAlone = errors.New("pgstore: write alone")

func newSpendGroup(pool *pgxpool.Pool) *spendGroup {
	g := &spendGroup{pool: pool}
	g.q = groupq.Queue[spend, spendResult]{Run: g.run, Max: maxSpends}
	return g
}

// do moves the family read at version on to token and indexes token, in a group with the
// refreshes queued beside it. moved is false when the family's row is no longer that version,
// or locked; nothing is written then. It waits for the group's answer even when ctx ends: a
// group never waits on a lock, and a caller that left before its write's answer could not
// tell its client whether the token was spent.
func (g *spendGroup) do(ctx context.Context, family string, version uint32, token string) (moved bool, err error) {
	c := spend{family: family, token: token, version: version}
	if r := g.q.Do(c); r.err != errAlone {
		return r.moved, r.err
	}
	r := g.write(ctx, []spend{c})
	return r[0].moved, r[0].err
}

// run writes a group. The committer writes for many callers, so it answers to none of their
// contexts: the statement timeout (pgdb.Config) bounds it.
func (g *spendGroup) run(calls []spend) []spendResult {
	if g.hold != nil {
		g.hold()
	}
	return g.write(context.Background(), calls)
}

// write sends calls in one batch and answers each: moved or not; errAlone for all when the
// database refused the batch (a *pgconn.PgError: rolled back) or it was never sent, which a
// group of one returns as its own error instead; else the batch's error, for all.
func (g *spendGroup) write(ctx context.Context, calls []spend) []spendResult {
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
	var refused *pgconn.PgError
	if err != nil && len(calls) > 1 && (errors.As(err, &refused) || pgconn.SafeToRetry(err)) { // rolled back, or never sent
		err = errAlone
	}
	out := make([]spendResult, len(calls))
	for i, c := range calls {
		out[i] = spendResult{moved: err == nil && moved[[2]string{c.family, c.token}], err: err}
	}
	return out
}
