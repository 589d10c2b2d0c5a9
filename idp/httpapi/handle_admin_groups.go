package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/web"
)

// AdminGroups is what the admin's group routes need of the use cases.
type AdminGroups interface {
	CreateGroup(ctx context.Context, name string) (identity.Group, error)
	ListGroups(ctx context.Context, prefix, after string, limit int) ([]identity.Group, string, error)
	DeleteGroup(ctx context.Context, name string) error
	AddMember(ctx context.Context, group, user string) (identity.User, error)
	RemoveMember(ctx context.Context, group, user string) (identity.User, error)
}

// GroupInfo is a group on the wire.
type GroupInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// GroupPage is GET /admin/groups' result.
type GroupPage struct {
	Groups []GroupInfo `json:"groups"`
	Next   string      `json:"next,omitempty"` // the after of the next page
}

type createGroupRequest struct {
	Name string `json:"name"`
}

func (c createGroupRequest) Valid() map[string]string {
	if c.Name == "" {
		return map[string]string{"name": `Field "name" is required`}
	}
	return nil
}

// handleGroupsCreate is POST /admin/groups {"name"}: 201 with the group; 400 for a name outside
// [a-z0-9._:-]{1,64}, 409 when it is taken.
func handleGroupsCreate(logger *slog.Logger, svc AdminGroups) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createGroupRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		g, err := svc.CreateGroup(r.Context(), req.Name)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusCreated, GroupInfo{Name: g.Name, CreatedAt: g.CreatedAt.UTC()})
	})
}

// handleGroupsList is GET /admin/groups?prefix=&after=&limit=, by name, 100 a page by default.
func handleGroupsList(logger *slog.Logger, svc AdminGroups) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := pageLimit(q)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		groups, next, err := svc.ListGroups(r.Context(), q.Get("prefix"), q.Get("after"), limit)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		page := GroupPage{Groups: make([]GroupInfo, 0, len(groups)), Next: next}
		for _, g := range groups {
			page.Groups = append(page.Groups, GroupInfo{Name: g.Name, CreatedAt: g.CreatedAt.UTC()})
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusOK, page)
	})
}

// handleGroupsDelete is DELETE /admin/groups/{name}: 204, and forget (the members' cached
// sessions) runs so /verify sees the change at once on this process; 404 for no such group.
func handleGroupsDelete(logger *slog.Logger, svc AdminGroups, forget func(name string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := svc.DeleteGroup(r.Context(), name); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		forget(name)
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleGroupMember is PUT or DELETE /admin/groups/{name}/members/{user} ({user}: the user's
// id, as every admin user route): 204; 404 for no such group or user, or (DELETE) a user who is
// not a member; 409 (PUT) for one who is.
func handleGroupMember(logger *slog.Logger, change func(ctx context.Context, group, user string) (identity.User, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := change(r.Context(), r.PathValue("name"), r.PathValue("user")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
