package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jwtidp/shared/proctest"
)

// A person in a real browser: open a protected page through nginx, land on the login form,
// sign in, come back to the page that shows who they are; log out, and the page sends them to
// the login form again.
func TestBrowserLoginThroughNginx(t *testing.T) {
	need(t, "chromium") // before starting anything
	s := startStack(t)
	signupAndToken(t, s.idp.URL, "frida")

	br := proctest.NewBrowser(t, 60*time.Second)
	step, value := br.Step, br.Value
	page := s.proxy + "/projects/42?tab=files"

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
