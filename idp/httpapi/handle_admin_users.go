package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// AdminUsers is what the admin's user routes need of the use cases.
type AdminUsers interface {
	AdminListUsers(ctx context.Context, prefix, after string, limit int) ([]identity.User, string, error)
	AdminUser(ctx context.Context, user string) (identity.User, error)
	AdminUserByName(ctx context.Context, username string) ([]identity.User, error)
	ReleaseUsername(ctx context.Context, username string) (identity.ReservedName, error)
	DisableUser(ctx context.Context, user string) (identity.User, error)
	EnableUser(ctx context.Context, user string) (identity.User, error)
	LogoutUser(ctx context.Context, user string) (identity.User, error)
	DeleteUser(ctx context.Context, user string) (identity.User, error)
	SetAdmin(ctx context.Context, user string, admin bool) (identity.User, error)
}

// AdminUserInfo is a user as the admin routes show it: never a password hash, a TOTP secret, a
// recovery code or a passkey's key — only which second factors the user has.
type AdminUserInfo struct {
	ID            string     `json:"id"`
	Username      string     `json:"username"`
	CreatedAt     time.Time  `json:"created_at"`
	Email         string     `json:"email,omitempty"`
	EmailVerified bool       `json:"email_verified"`
	SecondFactors []string   `json:"second_factors"` // "totp", "passkey"
	LastLoginAt   *time.Time `json:"last_login_at"`  // null: never
	Disabled      bool       `json:"disabled"`
	Admin         bool       `json:"admin"`
}

// AdminUserPage is GET /admin/users' result.
type AdminUserPage struct {
	Users []AdminUserInfo `json:"users"`
	Next  string          `json:"next,omitempty"` // the after of the next page
}

func adminUserInfo(u identity.User) AdminUserInfo {
	f := []string{}
	if u.Factors.HasTOTP() {
		f = append(f, "totp")
	}
	if len(u.Factors.Passkeys) > 0 {
		f = append(f, "passkey")
	}
	return AdminUserInfo{ID: u.ID, Username: u.Username, CreatedAt: u.CreatedAt.UTC(), Email: u.Email,
		EmailVerified: u.EmailVerified, SecondFactors: f, LastLoginAt: optTime(u.LastLoginAt.UTC()), Disabled: u.Disabled, Admin: u.Admin}
}

// handleAdminUserAction is an admin's action on the user {user} (their id): 200 with
// the user as it is after it (for a deletion, as it was); 404 for no such user.
func handleAdminUserAction(logger *slog.Logger, do func(ctx context.Context, user string) (identity.User, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := do(r.Context(), r.PathValue("user"))
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusOK, adminUserInfo(u))
	})
}

func handleAdminUsers(logger *slog.Logger, svc AdminUsers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("username") {
			users, err := svc.AdminUserByName(r.Context(), q.Get("username"))
			if err != nil {
				web.Error(w, r, logger, err)
				return
			}
			writeUserPage(w, users, "")
			return
		}
		limit, err := pageLimit(q)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		users, next, err := svc.AdminListUsers(r.Context(), q.Get("prefix"), q.Get("after"), limit)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		writeUserPage(w, users, next)
	})
}

// pageLimit is an admin list's ?limit=, 100 when absent; EINVALID when it is no number (the
// use case checks its range).
func pageLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", identity.MaxListLimit)
	}
	return n, nil
}

// writeUserPage answers GET /admin/users with users and the next page's after.
func writeUserPage(w http.ResponseWriter, users []identity.User, next string) {
	page := AdminUserPage{Users: make([]AdminUserInfo, 0, len(users)), Next: next}
	for _, u := range users {
		page.Users = append(page.Users, adminUserInfo(u))
	}
	w.Header().Set("Cache-Control", "no-store")
	web.Success(w, http.StatusOK, page)
}

// handleReleaseUsername is POST /admin/usernames/{name}/release: 204 once the deleted user's
// username and email are free; 404 when nothing is reserved under the name.
func handleReleaseUsername(logger *slog.Logger, svc AdminUsers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := svc.ReleaseUsername(r.Context(), r.PathValue("name")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleAdminUser(logger *slog.Logger, svc AdminUsers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.AdminUser(r.Context(), r.PathValue("user"))
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusOK, adminUserInfo(u))
	})
}
