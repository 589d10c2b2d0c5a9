package pgstore

import (
	"context"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"jwtidp/idp/identity"
	"jwtidp/shared/groupq"
)

// ownerCols are the columns of a family's owner, of the table aliased u (zero values when the
// owner is gone); ownerGroups is the owner's groups, in UserGroups's order.
const (
	ownerCols = `COALESCE(u.id, ''), COALESCE(u.username, ''), COALESCE(u.password_hash, ''),
			COALESCE(u.created_at, '0001-01-01'::timestamptz), COALESCE(u.epoch, 0),
			COALESCE(u.email, ''), COALESCE(u.email_verified, false), COALESCE(u.second_factors, '{}'),
			COALESCE(u.disabled, false), COALESCE(u.admin, false), u.last_login_at`
	ownerGroups = `,
			ARRAY(SELECT g.group_name FROM group_members g WHERE g.user_id = f.user_id ORDER BY g.group_name)`
)

// readFamilies reads, for each token hash of $1 that a family issued, the hash, the family,
// its owner (zero values when the owner is gone), the version of the family's row (its xmin,
// which every update of the row changes) and the owner's groups in UserGroups's order.
const readFamilies = `SELECT t.token_hash, ` + familyCols + `, ` + ownerCols + `, f.xmin` + ownerGroups + `
		FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id LEFT JOIN users u ON u.id = f.user_id
		WHERE t.token_hash = ANY($1::text[])`

// readGroup reads the families of concurrent refreshes together, as spendGroup writes them:
// the reads that queue while one is in flight go as one statement, one round trip. The read
// takes no lock and decides nothing (refreshOptimistic's write does, by the version read), so
// reading many families in one snapshot changes nothing any refresh sees. A lone read goes at
// once. As with spendGroup, the group shares its fate: a statement that fails or times out
// fails every refresh in it, and the reads queued behind it wait for it.
type readGroup struct {
	pool *pgxpool.Pool
	q    groupq.Queue[string, familyRead]
	hold func() // tests: called as each group starts
}

// familyRead is what readFamilies read for one token hash: errNoFamily when no family issued it.
type familyRead struct {
	family  identity.Family
	owner   userRow
	version uint32
	groups  []string
	err     error
}

func newReadGroup(pool *pgxpool.Pool) *readGroup {
	g := &readGroup{pool: pool}
	g.q = groupq.Queue[string, familyRead]{Run: g.run, Max: maxSpends}
	return g
}

// do reads the family that issued tokenHash in a group with the reads queued beside it. A
// caller whose ctx ends leaves at once with its error (a read decides nothing, so nothing is
// left unknown), and does not go on to spend a token its client will not hear of.
func (g *readGroup) do(ctx context.Context, tokenHash string) (familyRead, error) {
	return g.q.DoContext(ctx, tokenHash)
}

// run reads a group. It answers to none of its callers' contexts (each leaves when its own
// ends): the statement timeout (pgdb.Config) bounds the statement, and the wait for a pool
// connection lasts as long as the statements that hold them.
func (g *readGroup) run(hashes []string) []familyRead {
	if g.hold != nil {
		g.hold()
	}
	out := make([]familyRead, len(hashes))
	at := make(map[string][]int, len(hashes)) // two refreshes of one token read it once
	for i, h := range hashes {
		at[h] = append(at[h], i)
		out[i].err = errNoFamily
	}
	ctx := context.Background()
	rows, err := g.pool.Query(ctx, readFamilies, slices.Collect(maps.Keys(at)))
	if err == nil {
		for rows.Next() {
			var r familyRead
			var hash string
			dest := append([]any{&hash}, familyDest(&r.family)...)
			dest = append(append(dest, r.owner.dest()...), &r.version, &r.groups)
			if err = rows.Scan(dest...); err != nil {
				break
			}
			f := &r.family
			f.CreatedAt, f.ExpiresAt, f.AuthTime = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), f.AuthTime.UTC()
			for n, i := range at[hash] {
				if n > 0 { // a copy of its own, as a read of its own would be
					r.family.Audience, r.family.AMR = slices.Clone(r.family.Audience), slices.Clone(r.family.AMR)
					r.owner.factors, r.groups = slices.Clone(r.owner.factors), slices.Clone(r.groups)
				}
				out[i] = r
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		for i := range out {
			out[i] = familyRead{err: err}
		}
	}
	return out
}
