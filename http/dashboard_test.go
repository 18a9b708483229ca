package http

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

func TestDashboardServedWithoutToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{readTokens: []string{"r"}})
	page := e.do("GET", "/", nil)
	mustStatus(t, page, http.StatusOK)
	html := string(page.body)
	if !strings.Contains(html, "/dashboard/dashboard.js") || !strings.Contains(html, "/dashboard/dashboard.css") {
		t.Errorf("the page does not load its script and style sheet:\n%.400s", html)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q, want one that allows nothing from elsewhere", csp)
	}
	for _, asset := range []string{"dashboard.js", "dashboard.css", "icon.svg"} {
		resp := e.do("GET", "/dashboard/"+asset, nil)
		mustStatus(t, resp, http.StatusOK)
		if strings.Contains(string(resp.body), "://") && !strings.Contains(asset, ".svg") {
			t.Errorf("/dashboard/%s names an absolute URL: the page must work offline", asset)
		}
	}
	mustStatus(t, e.do("GET", "/dashboard/nope.js", nil), http.StatusNotFound)
	// The data stays behind the read token.
	mustStatus(t, e.do("GET", "/stats", nil), http.StatusUnauthorized)
}

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// TestDashboardInBrowser drives the page in headless Chromium against the real handler: it
// enters the read token, watches the totals and the topic table follow what is published,
// filters and pages the latest events, and saves a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no Chromium at %s: the browser test needs it", chromiumPath)
	}
	const readToken = "dashboard-reader"
	e := newEnv(t, envOptions{readTokens: []string{readToken}})
	b := newBrowser(t)

	b.do(chromedp.Navigate(e.server.URL + "/"))
	b.waitFor("the token form, since reads need a token", func(v pageView) bool {
		return v.AuthShown && v.Conn == "auth"
	})
	b.do(chromedp.SendKeys(chromedp.ID("token-input"), readToken), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	b.waitFor("the live state with the token", func(v pageView) bool { return v.Conn == "live" && !v.AuthShown })

	conflict := event("orders", 3)
	conflict["payload"] = map[string]any{"n": "changed"}
	for _, batch := range [][]map[string]any{
		events("orders", 0, 30), events("users", 0, 3), events("payments", 0, 5),
		events("orders", 0, 10), {conflict},
	} {
		mustStatus(t, e.publish(mustJSON(t, batch)), http.StatusOK)
	}
	b.waitFor("49 received, 38 unique, 11 duplicates, 1 conflict", func(v pageView) bool {
		return v.totals(49, 38, 11, 1) &&
			v.topic("orders", 30, 11, 1) && v.topic("payments", 5, 0, 0) && v.topic("users", 3, 0, 0)
	})

	// A subscription shows with its lag, which follows its commits.
	auth := []string{"Content-Type", "application/json", "Authorization", "Bearer " + readToken}
	mustStatus(t, e.do("PUT", "/subscriptions/billing", []byte(`{"topics": ["orders"]}`), auth...), http.StatusCreated)
	b.waitFor("the billing subscription, 30 orders behind", func(v pageView) bool {
		return len(v.Subscriptions) == 1 && v.Subscriptions[0].Name == "billing" && shown(v.Subscriptions[0].Lag) == 30
	})
	var page subscriptionEventsAnswer
	read := e.do("GET", "/subscriptions/billing/events?limit=10", nil, auth...)
	mustStatus(t, read, http.StatusOK)
	read.decode(t, &page)
	mustStatus(t, e.do("POST", "/subscriptions/billing/commit", []byte(`{"cursor": "`+page.Cursor+`"}`), auth...), http.StatusOK)
	b.waitFor("billing 20 orders behind once it committed 10", func(v pageView) bool {
		return len(v.Subscriptions) == 1 && shown(v.Subscriptions[0].Lag) == 20 && v.Subscriptions[0].Cursor == page.Cursor
	})

	// The Metrics link, which cannot carry the token, shows /metrics in the page instead.
	b.do(chromedp.Click(chromedp.ID("metrics-link")),
		chromedp.Poll[chromedp.Void](`document.getElementById("metrics-text").textContent.includes("uts_up")`,
			chromedp.WithPollingTimeout(10*time.Second)))
	metrics, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID("metrics-text")))
	if err != nil {
		t.Fatalf("read the metrics view: %v", err)
	}
	b.do(chromedp.Click(chromedp.ID("metrics-close")))
	if !strings.Contains(metrics, "uts_up 1") { // the test env's metrics handler
		t.Fatalf("the metrics view shows %.200q, want the Prometheus text", metrics)
	}

	for _, batch := range [][]map[string]any{events("orders", 30, 45), events("users", 0, 3), events("audit", 0, 2)} {
		mustStatus(t, e.publish(mustJSON(t, batch)), http.StatusOK)
	}
	b.waitFor("the new totals and the new topic", func(v pageView) bool {
		return v.totals(69, 55, 14, 1) && v.topic("orders", 45, 11, 1) && v.topic("users", 3, 3, 0) &&
			v.topic("audit", 2, 0, 0) && len(v.Topics) == 4
	})

	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById("topic-filter");
		s.value = "users";
		s.dispatchEvent(new Event("change", {bubbles: true}));
	})()`))
	b.waitFor("only the users' events", func(v pageView) bool {
		return v.eventIDs("users") == "users-2 users-1 users-0"
	})

	// Clicking a topic's row filters by it too; 45 orders make three pages.
	b.do(chromedp.Click(chromedp.CSS(`#topics tr[data-topic="orders"]`)))
	b.waitFor("the 20 newest orders, live", func(v pageView) bool {
		return v.eventIDs("orders") == orderIDs(44, 25) && v.Mode == "live" && !v.OlderDisabled && v.NewerDisabled
	})
	b.do(chromedp.Click(chromedp.ID("page-older")))
	b.waitFor("the 20 orders before them, paused", func(v pageView) bool {
		return v.eventIDs("orders") == orderIDs(24, 5) && v.Mode == "paused" && !v.NewerDisabled
	})
	b.do(chromedp.Click(chromedp.ID("page-older")))
	b.waitFor("the 5 oldest orders", func(v pageView) bool {
		return v.eventIDs("orders") == orderIDs(4, 0) && v.OlderDisabled
	})
	b.do(chromedp.Click(chromedp.ID("page-newer")))
	b.waitFor("the middle page again", func(v pageView) bool { return v.eventIDs("orders") == orderIDs(24, 5) })
	b.do(chromedp.Click(chromedp.ID("page-latest")))
	b.waitFor("the newest orders, live again", func(v pageView) bool {
		return v.eventIDs("orders") == orderIDs(44, 25) && v.Mode == "live"
	})

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if os.Getenv("UTS_SCREENSHOT") == "1" {
		shot = filepath.Join("..", "docs", "dashboard.png")
		publishTraffic(t, e, 75*time.Second)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById("topic-filter");
		s.value = "";
		s.dispatchEvent(new Event("change", {bubbles: true}));
	})()`))
	b.waitFor("every topic's events", func(v pageView) bool {
		return len(v.Events) > 0 && slices.ContainsFunc(v.Events, func(ev pageEvent) bool { return ev.Topic != v.Events[0].Topic })
	})
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
	b.checkNoErrors()
}

func orderIDs(from, downTo int) string {
	var ids []string
	for i := from; i >= downTo; i-- {
		ids = append(ids, "orders-"+strconv.Itoa(i))
	}
	return strings.Join(ids, " ")
}

// browser is one headless Chromium with one tab, ended with the test.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	b := &browser{t: t}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 5*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Containers have a small /dev/shm, which Chromium fills and then crashes.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.exceptions = append(b.exceptions, exceptionText(ex.ExceptionDetails))
		}
	}))
	b.ctx = tabCtx
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	return b
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "an exception"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) checkNoErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ex := range b.exceptions {
		b.t.Errorf("the page threw: %s", ex)
	}
}

// pageView is what the page shows, read from its DOM.
type pageView struct {
	Conn          string             `json:"conn"`
	AuthShown     bool               `json:"authShown"`
	Totals        map[string]string  `json:"totals"`
	Topics        []pageTopic        `json:"topics"`
	Events        []pageEvent        `json:"events"`
	Mode          string             `json:"mode"`
	OlderDisabled bool               `json:"olderDisabled"`
	NewerDisabled bool               `json:"newerDisabled"`
	Subscriptions []pageSubscription `json:"subscriptions"`
}

type pageSubscription struct {
	Name   string `json:"name"`
	Cursor string `json:"cursor"`
	Lag    string `json:"lag"`
}

type pageTopic struct {
	Topic      string `json:"topic"`
	Unique     string `json:"unique"`
	Duplicates string `json:"duplicates"`
	Conflicts  string `json:"conflicts"`
}

type pageEvent struct {
	Topic   string `json:"topic"`
	EventID string `json:"eventId"`
}

const readPage = `(() => {
	const $ = (id) => document.getElementById(id);
	const text = (el, sel) => el.querySelector(sel).textContent;
	return {
		conn: $("conn").dataset.state,
		authShown: !$("auth").hidden,
		totals: Object.fromEntries(["received", "unique", "duplicates", "conflicts", "dead", "queue"]
			.map((k) => [k, $("stat-" + k).textContent])),
		topics: [...document.querySelectorAll("#topics tbody tr")].map((tr) => ({
			topic: tr.dataset.topic, unique: text(tr, ".unique"),
			duplicates: text(tr, ".duplicates"), conflicts: text(tr, ".conflicts"),
		})),
		events: $("events").hidden ? [] : [...document.querySelectorAll("#events tbody tr")]
			.map((tr) => ({topic: tr.dataset.topic, eventId: tr.dataset.eventId})),
		mode: $("events-mode").dataset.state,
		olderDisabled: $("page-older").disabled,
		newerDisabled: $("page-newer").disabled,
		subscriptions: [...document.querySelectorAll("#subscriptions tbody tr")].map((tr) => ({
			name: tr.dataset.subscription, cursor: text(tr, ".cursor"), lag: text(tr, ".lag"),
		})),
	};
})()`

// shown reads a number as the page prints it.
func shown(s string) int64 {
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (v pageView) totals(received, unique, duplicates, conflicts int64) bool {
	return shown(v.Totals["received"]) == received && shown(v.Totals["unique"]) == unique &&
		shown(v.Totals["duplicates"]) == duplicates && shown(v.Totals["conflicts"]) == conflicts &&
		shown(v.Totals["dead"]) == 0
}

func (v pageView) topic(name string, unique, duplicates, conflicts int64) bool {
	for _, row := range v.Topics {
		if row.Topic == name {
			return shown(row.Unique) == unique && shown(row.Duplicates) == duplicates && shown(row.Conflicts) == conflicts
		}
	}
	return false
}

// eventIDs lists the shown event IDs, newest first, or "" when any is not of topic.
func (v pageView) eventIDs(topic string) string {
	var ids []string
	for _, ev := range v.Events {
		if ev.Topic != topic {
			return ""
		}
		ids = append(ids, ev.EventID)
	}
	return strings.Join(ids, " ")
}

// waitFor reads the page until cond holds, bounded in time: the page polls once a second.
func (b *browser) waitFor(what string, cond func(pageView) bool) pageView {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[pageView](readPage))
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			b.checkNoErrors()
			b.t.Fatalf("timed out waiting for the page to show %s; it shows %+v (read error: %v)", what, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishTraffic publishes for a while at a rate that swells and ebbs, with some retries
// (duplicates) and a few conflicts, so that the screenshot shows what a real run looks like.
func publishTraffic(t *testing.T, e *env, d time.Duration) {
	t.Helper()
	topics := []struct {
		name   string
		weight int
		source string
	}{{"orders", 40, "shop"}, {"payments", 25, "billing"}, {"users", 15, "auth"}, {"inventory", 12, "warehouse"}, {"audit", 8, "gateway"}}
	rng := rand.New(rand.NewPCG(1, 2))
	var sent []map[string]any
	seq := map[string]int{}
	start := time.Now()
	for tick := 0; time.Since(start) < d && tick < int(d/(200*time.Millisecond))+1; tick++ {
		elapsed := time.Since(start).Seconds()
		rate := 140 + 90*math.Sin(2*math.Pi*elapsed/45) + 30*math.Sin(2*math.Pi*elapsed/11)
		var batch []map[string]any
		for range int(rate / 5) {
			switch r := rng.Float64(); {
			case r < 0.14 && len(sent) > 0: // a retry: the same event again
				batch = append(batch, sent[rng.IntN(len(sent))])
			case r < 0.145 && len(sent) > 0: // a producer bug: the same key, other content
				ev := maps.Clone(sent[rng.IntN(len(sent))])
				ev["payload"] = map[string]any{"corrected": true}
				batch = append(batch, ev)
			default:
				pick := rng.IntN(100)
				for _, tp := range topics {
					if pick -= tp.weight; pick < 0 {
						seq[tp.name]++
						ev := map[string]any{
							"topic":     tp.name,
							"event_id":  fmt.Sprintf("%s-%06d", tp.name[:3], seq[tp.name]),
							"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
							"source":    tp.source,
							"payload":   map[string]any{"amount": rng.IntN(50000) / 100, "region": []string{"eu", "us", "ap"}[rng.IntN(3)]},
						}
						sent = append(sent, ev)
						batch = append(batch, ev)
						break
					}
				}
			}
		}
		if len(batch) > 0 {
			mustStatus(t, e.publish(mustJSON(t, batch)), http.StatusOK)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
