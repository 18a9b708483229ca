package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
)

// copyFile copies src to dst; a missing src is no file at dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWALBufferSpillsRollbacksRestarts drives a connection on the gathering VFS with a page
// cache of 10 pages (every transaction of more than a few rows spills frames that are not a
// commit, and reads them back), a WAL checkpointed every 20 frames (so it restarts at offset
// 0 while older frames lie further on) and a third of its transactions rolled back after
// they spilled. After each transaction a reader on the default VFS must see exactly the
// committed rows, and a copy of the files taken at that instant (what a kill -9 leaves)
// must recover to the same rows and pass integrity_check.
func TestWALBufferSpillsRollbacksRestarts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.db")
	w, r := openGathering(t, path, "_pragma=cache_size(10)", "_pragma=wal_autocheckpoint(20)")
	r.SetMaxOpenConns(1)

	const check = `SELECT count(*), coalesce(sum(id), 0), coalesce(sum(id * unicode(substr(v, 1500, 1))), 0) FROM t`
	var wantN, wantSum, wantMix int64
	verify := func(db *sql.DB, what string) {
		t.Helper()
		var n, sum, mix int64
		if err := db.QueryRow(check).Scan(&n, &sum, &mix); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != wantN || sum != wantSum || mix != wantMix {
			t.Fatalf("%s: sees (%d, %d, %d), want (%d, %d, %d)", what, n, sum, mix, wantN, wantSum, wantMix)
		}
	}
	journal, err := w.FileControl("main", sqlite3.FCNTL_JOURNAL_POINTER)
	if err != nil {
		t.Fatal(err)
	}
	wal := journal.(*walFile)
	walEnd := func() int64 {
		size, err := wal.File.Size()
		if err != nil {
			t.Fatal(err)
		}
		return max(size, wal.at+int64(len(wal.pending)))
	}
	spilledRollbacks, restarts, salt := 0, 0, ""
	rng := rand.New(rand.NewPCG(1, 2))
	next := int64(1)
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; round < 40 && time.Now().Before(deadline); round++ {
		if err := w.Exec(`BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		before := walEnd()
		rows := 1 + rng.IntN(150)
		var n, sum, mix int64
		for range rows {
			id := next
			next++
			c := int64('A' + id%26)
			if err := w.Exec(fmt.Sprintf(`INSERT INTO t VALUES (%d, printf('%%.2000c', char(%d)))`, id, c)); err != nil {
				t.Fatal(err)
			}
			n, sum, mix = n+1, sum+id, mix+id*c
		}
		// Rewrite some earlier rows of this transaction: pages spilled already are written
		// again (SQLite overwrites their frames in place and rewrites the checksums).
		if err := w.Exec(fmt.Sprintf(`UPDATE t SET v = v WHERE id > %d`, next-int64(rows)/2-1)); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(3) == 0 {
			if walEnd() > before || wal.at < before {
				spilledRollbacks++
			}
			if err := w.Exec(`ROLLBACK`); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := w.Exec(`COMMIT`); err != nil {
				t.Fatal(err)
			}
			wantN, wantSum, wantMix = wantN+n, wantSum+sum, wantMix+mix
		}
		// A new salt in the WAL header: the WAL restarted at offset 0.
		// (Read from the file, not through wal: that would write what it holds.)
		hdr, err := os.ReadFile(path + "-wal")
		if err != nil || len(hdr) < 32 {
			t.Fatalf("read the WAL header: %d bytes, %v", len(hdr), err)
		}
		if string(hdr[16:24]) != salt {
			restarts++
			salt = string(hdr[16:24])
		}
		verify(r, fmt.Sprintf("round %d: the reader", round))
		if round%10 == 9 {
			// What a kill -9 at this instant leaves: the files as they are.
			crash := filepath.Join(t.TempDir(), "c.db")
			copyFile(t, path, crash)
			copyFile(t, path+"-wal", crash+"-wal")
			c, err := sql.Open("sqlite3", dsn(crash))
			if err != nil {
				t.Fatal(err)
			}
			verify(c, fmt.Sprintf("round %d: the copy", round))
			var ok string
			if err := c.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Fatalf("round %d: integrity_check of the copy = %q, %v", round, ok, err)
			}
			c.Close()
		}
	}
	if spilledRollbacks == 0 || restarts == 0 {
		t.Fatalf("%d rollbacks after a spill and %d restarts of the WAL: the test did not test them", spilledRollbacks, restarts)
	}
	t.Logf("%d rollbacks after a spill, %d restarts of the WAL", spilledRollbacks, restarts)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	verify(r, "after the writer closed")
}

// killChildEnv makes the test binary act as the writer that TestAppendSurvivesKill kills.
const killChildEnv = "UTS_SQLITE_KILL_CHILD"

// TestAppendSurvivesKill checks promise 1 at the store, the WAL's gathered writes included:
// it kills (SIGKILL) a process appending to the store several times over the same file.
// (Power loss is left to synchronous=FULL, which syncs what was gathered first.) The child's writer has a page cache of 20 pages, so its batches of up
// to 400 events of 1 KiB spill frames before they commit, and some of its Appends are
// interrupted after they spilled (rolled back, not acknowledged). Every acknowledged event
// must be there after each kill, and the file must pass integrity_check.
func TestAppendSurvivesKill(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		appendUntilKilled(path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	acked := map[string]bool{}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 3 {
		child := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestAppendSurvivesKill$")
		child.Env = append(os.Environ(), killChildEnv+"="+path, "UTS_ROUND="+strconv.Itoa(round))
		out, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		killAt := time.After(time.Duration(800+rng.IntN(2500)) * time.Millisecond)
		n := 0
		// noteAcked counts the events of an acknowledgement line, and says whether it was one.
		noteAcked := func(l string) bool {
			ids, ok := strings.CutPrefix(l, "acked ")
			if !ok {
				return false
			}
			for _, id := range strings.Fields(ids) {
				acked[id] = true
				n++
			}
			return true
		}
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: the child ended before the kill", round)
				}
				if !noteAcked(l) {
					t.Logf("child: %s", l)
				}
			case <-killAt:
				break read
			}
		}
		if err := child.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for l := range lines { // acknowledgements written before the kill still count
			noteAcked(l)
		}
		child.Wait()
		if n == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill", round)
		}

		db, err := sql.Open("sqlite3", dsn(path, "_pragma=query_only(1)"))
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("round %d: integrity_check = %q, %v", round, ok, err)
		}
		stored := map[string]bool{}
		rows, err := db.Query(`SELECT event_id FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			stored[id] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		db.Close()
		missing := 0
		for id := range acked {
			if !stored[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged events are missing after kill -9", round, missing, len(acked))
		}
		t.Logf("round %d: %d acknowledged in all, %d stored", round, len(acked), len(stored))
	}
}

func appendUntilKilled(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if err := s.writer.Exec(`PRAGMA cache_size = 20`); err != nil {
		fmt.Println("cache_size:", err)
		os.Exit(1)
	}
	round := os.Getenv("UTS_ROUND")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	filler := strings.Repeat("x", 1000)
	for b := 0; b < 100_000; b++ { // bounded even if nobody kills us
		size := 1 + rng.IntN(400)
		batch := make([]uts.Event, size)
		ids := make([]string, size)
		for i := range batch {
			ids[i] = fmt.Sprintf("r%s-b%d-%d", round, b, i)
			batch[i] = uts.Event{Topic: fmt.Sprintf("t%d", rng.IntN(5)), EventID: ids[i], Timestamp: time.Now(),
				Source: "kill", Payload: []byte(`{"f":"` + filler + `"}`)}
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if rng.IntN(4) == 0 { // interrupted part-way: rolled back after spilling
			actx, cancel = context.WithTimeout(ctx, time.Duration(1+rng.IntN(8))*time.Millisecond)
		}
		_, err := s.Append(actx, batch)
		cancel()
		if err != nil {
			if actx.Err() != nil {
				continue
			}
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Println("acked " + strings.Join(ids, " "))
	}
	os.Exit(0)
}

// TestWALBufferWithoutPowersafeOverwrite: with psow=0 on the database, SQLite pads each commit
// with copies of its last frame up to the next sector and syncs the WAL at the sector
// boundary, in the middle of the last padding frame, whose rest it writes after the sync.
// It then makes all of the frames visible, padding included, and the highest of them is
// what a reader reads for that page. Gathered, that rest would stay in the writer's memory:
// a reader in the same process would read a frame that is not in the file yet.
func TestWALBufferWithoutPowersafeOverwrite(t *testing.T) {
	w, r := openGathering(t, filepath.Join(t.TempDir(), "w.db"), "psow=0")
	for i := 1; i <= 20; i++ {
		if err := w.Exec(fmt.Sprintf(`INSERT INTO t VALUES (%d, printf('%%.500c', 'x'))`, i)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := r.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != i {
			t.Fatalf("after commit %d the reader sees %d rows, %v", i, n, err)
		}
	}
}

// openGathering opens a writer on the gathering VFS, in WAL mode with synchronous=FULL and
// the given parameters, creates the table t(id, v) and opens a reader on the default VFS.
// Both close when the test ends.
func openGathering(t *testing.T, path string, params ...string) (*sqlite3.Conn, *sql.DB) {
	t.Helper()
	params = append([]string{"vfs=" + walBufferVFSName, "_pragma=page_size(4096)", "_pragma=journal_mode(wal)",
		"_pragma=synchronous(full)"}, params...)
	w, err := sqlite3.Open(dsn(path, params...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	r, err := sql.Open("sqlite3", dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r
}
