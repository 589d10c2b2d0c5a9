package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A person in a real browser: open a protected page through nginx, land on the login form,
// sign in, come back to the page that shows who they are; log out, and the page sends them to
// the login form again.
func TestBrowserLoginThroughNginx(t *testing.T) {
	chromium := need(t, "chromium")
	s := startStack(t)
	signupAndToken(t, s.idp.URL, "frida")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	page := s.proxy + "/projects/42?tab=files"
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	value := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	step("open the protected page", chromedp.Navigate(page), chromedp.WaitVisible(`#username`))
	if title, url := value(chromedp.Title()), value(chromedp.Location()); title != "Sign in" || !strings.Contains(url, "/login?rd=") {
		t.Fatalf("landed on %q (%s), want the login form", title, url)
	}
	step("sign in",
		chromedp.SendKeys(`#username`, "frida"),
		chromedp.SendKeys(`#password`, "correct-horse-9"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#user`),
	)
	if user, url := value(chromedp.Text(`#user`)), value(chromedp.Location()); user != "frida" || url != page {
		t.Fatalf("after sign-in: at %s showing %q; want %s showing frida", url, user, page)
	}
	// The app's plain "log out" button leads to the IdP's confirmation page (its form carries
	// the session's CSRF token), and confirming signs out.
	step("log out", chromedp.Click(`#logout`), chromedp.WaitVisible(`#confirm-logout`))
	step("confirm", chromedp.Click(`#confirm-logout`), chromedp.WaitVisible(`#username`))
	step("open the page again", chromedp.Navigate(page), chromedp.WaitVisible(`#username`))
	if url := value(chromedp.Location()); !strings.Contains(url, "/login?rd=") {
		t.Fatalf("after logout the protected page shows %s, want the login form", url)
	}
}
