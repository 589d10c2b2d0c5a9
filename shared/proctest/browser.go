package proctest

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is Chromium driven through chromedp: a person's clicks in an end-to-end test.
type Browser struct {
	t   testing.TB
	ctx context.Context
	// Context, when set, adds to a failed step's message (a proxy's log, say).
	Context func() string
}

// NewBrowser starts Chromium with a fresh profile — skipping, or failing where integration is
// required, when it is not installed (Need) — and closes it when the test ends. Every step
// together must finish within timeout. extra adds to (or overrides) the command line's flags:
// a test whose apps have host names maps them to loopback with
// chromedp.Flag("host-resolver-rules", "MAP *.example.test 127.0.0.1").
func NewBrowser(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	chromium := Need(t, "chromium")
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
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return &Browser{t: t, ctx: ctx}
}

// Step runs actions, failing the test with what when they fail.
func (b *Browser) Step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		extra := ""
		if b.Context != nil {
			extra = "\n" + b.Context()
		}
		b.t.Fatalf("%s: %v%s", what, err, extra)
	}
}

// Value runs an action that reads something (a title, a location, a text) and returns it.
func (b *Browser) Value(a chromedp.Action[string]) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}
