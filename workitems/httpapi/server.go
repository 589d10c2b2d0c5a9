// Package httpapi is the work-item service's HTTP layer: token check and scope per route, then
// the store, with the app envelope of API.md.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
	"jwtidp/workitems/workitem"
)

// Deps are the server's dependencies.
type Deps struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Items    workitem.Store
	Verifier *jwtauth.Verifier
	Ready    *web.Readiness
	Now      func() time.Time
	// AdminToken enables GET /admin/backup; "" leaves it answering 404.
	AdminToken string
	Store      web.Snapshotter
	// RemoteAddrs tells who a request comes from (trusted proxies' X-Forwarded-For), for the
	// access log and the admin guard's count of failures.
	RemoteAddrs web.ClientAddrs
	// Issuer is the IdP that its protected-resource metadata names (RFC 9728); Resource its
	// resource identifier, "" for its own URL as a request reaches it.
	Issuer, Resource string
}

// Scopes of API.md.
const (
	ScopeRead  = "workitems:read"
	ScopeWrite = "workitems:write"
	// ScopeAdmin lets GET /workitems?owner=all list every owner's items: a role the IdP grants
	// only to the members of a group (its configuration's scopes section).
	ScopeAdmin = "workitems:admin"
	realm      = "workitems"
)

// NewServer returns the service's handler with every route and the common middleware.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	read := func(h http.Handler) http.Handler { return d.Verifier.Require(realm, ScopeRead)(actors(d.Logger, h)) }
	write := func(h http.Handler) http.Handler { return d.Verifier.Require(realm, ScopeWrite)(actors(d.Logger, h)) }
	mux.Handle("GET /.well-known/oauth-protected-resource", handleResourceMetadata(d))
	mux.Handle("GET /.well-known/oauth-protected-resource/{path...}", handleResourceMetadata(d)) // a --resource with a path
	mux.Handle("GET /workitems", read(handleList(d)))
	mux.Handle("POST /workitems", write(handleCreate(d)))
	mux.Handle("GET /workitems/{id}", read(handleGet(d)))
	mux.Handle("PATCH /workitems/{id}", write(handlePatch(d)))
	mux.Handle("DELETE /workitems/{id}", write(handleDelete(d)))
	// Failed admin-token attempts are limited per client, named as the access log names them.
	admin := web.NewAdminGuard(d.AdminToken, d.RemoteAddrs, d.Now)
	mux.Handle("GET /admin/backup", admin(web.HandleBackup(d.Store, "workitems")))
	mux.Handle("GET /healthz", web.HandleHealthz())
	mux.Handle("GET /readyz", web.HandleReadyz(d.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", web.NotFound())
	return web.Middleware(withResourceMetadata(d, mux), d.Logger, web.NewHTTPMetrics(d.Registry), d.RemoteAddrs)
}

func owner(r *http.Request) string {
	c, _ := jwtauth.FromContext(r.Context())
	return workitem.Owner(c.Issuer, c.Subject)
}

// itemID parses the path id; anything that is not a positive number names no item.
func itemID(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, apperr.Errorf(apperr.ENOTFOUND, "Work item not found")
	}
	return id, nil
}

func handleList(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := workitem.Filter{Owner: owner(r), Limit: workitem.DefaultLimit}
		q := r.URL.Query()
		switch v := q.Get("owner"); v {
		case "":
		case "all":
			if c, _ := jwtauth.FromContext(r.Context()); !c.HasScope(ScopeAdmin) {
				// The RFC 6750 answer the middleware gives for a route's scope.
				d.Verifier.Require(realm, ScopeAdmin)(nil).ServeHTTP(w, r)
				return
			}
			f.AllOwners = true
		default:
			web.Error(w, r, d.Logger, apperr.Errorf(apperr.EINVALID, `owner may only be "all" (or absent: your own items)`))
			return
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > workitem.MaxLimit {
				web.Error(w, r, d.Logger, apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", workitem.MaxLimit))
				return
			}
			f.Limit = n
		}
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				web.Error(w, r, d.Logger, apperr.Errorf(apperr.EINVALID, "after must be an item id"))
				return
			}
			f.After = n
		}
		items, err := d.Items.List(r.Context(), f)
		if err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		web.SuccessRaw(w, http.StatusOK, workitem.AppendList(make([]byte, 0, 64+160*len(items)), items, f.AllOwners))
	})
}

// ignored are fields of an item that a client may send back but never sets: they are accepted
// and dropped, so a client cannot mass-assign an id, an owner or timestamps.
type ignored struct {
	ID        json.RawMessage `json:"id"`
	Owner     json.RawMessage `json:"owner"`
	CreatedAt json.RawMessage `json:"created_at"`
	UpdatedAt json.RawMessage `json:"updated_at"`
}

type createRequest struct {
	Title *string `json:"title"`
	Done  *bool   `json:"done"`
	ignored
}

func (c createRequest) Valid() map[string]string {
	if c.Title == nil {
		return map[string]string{"title": `Field "title" is required`}
	}
	if err := workitem.ValidateTitle(*c.Title); err != nil {
		return map[string]string{"title": apperr.Message(err)}
	}
	return nil
}

func handleCreate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		now := d.Now().UTC()
		it := workitem.Item{Owner: owner(r), Title: *req.Title, CreatedAt: now, UpdatedAt: now}
		if req.Done != nil {
			it.Done = *req.Done
		}
		it, err := d.Items.Create(r.Context(), it)
		if err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		w.Header().Set("Location", "/workitems/"+strconv.FormatUint(it.ID, 10))
		web.Success(w, http.StatusCreated, it)
	})
}

func handleGet(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := itemID(r)
		if err == nil {
			var it workitem.Item
			if it, err = d.Items.Get(r.Context(), owner(r), id); err == nil {
				web.Success(w, http.StatusOK, it)
				return
			}
		}
		web.Error(w, r, d.Logger, err)
	})
}

type patchRequest struct {
	Title *string `json:"title"`
	Done  *bool   `json:"done"`
	ignored
}

func (p patchRequest) Valid() map[string]string {
	if p.Title == nil && p.Done == nil {
		return map[string]string{"": `Nothing to update: send "title" or "done"`}
	}
	if p.Title != nil {
		if err := workitem.ValidateTitle(*p.Title); err != nil {
			return map[string]string{"title": apperr.Message(err)}
		}
	}
	return nil
}

func handlePatch(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := itemID(r)
		if err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		var req patchRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		u, now := workitem.Update{Title: req.Title, Done: req.Done}, d.Now().UTC()
		it, err := d.Items.Update(r.Context(), owner(r), id, func(it workitem.Item) (workitem.Item, error) { return it.Apply(u, now), nil })
		if err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		web.Success(w, http.StatusOK, it)
	})
}

func handleDelete(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := itemID(r)
		if err == nil {
			err = d.Items.Delete(r.Context(), owner(r), id)
		}
		if err != nil {
			web.Error(w, r, d.Logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
