package subscriber

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// output is where the events go, one NDJSON line each. Flush hands the buffered lines to the
// operating system, so that a reader of the pipe or file sees them; Sync also makes a file's
// lines durable, which is what must happen before their cursor is committed: otherwise a
// crash of the machine could lose lines the aggregator will never send again.
type output struct {
	w    *bufio.Writer
	file *os.File // nil when the writer is not a file
	sync bool     // fsync works on file (a regular file; not a pipe or a terminal)
}

const outputBuffer = 1 << 20

// openOutput appends to path, creating it, or writes to stdout when path is "" or "-".
// Appending is what makes a restart safe: the lines before the crash stay, and the repeats
// after it carry the cursors that tell them apart.
func openOutput(path string, stdout io.Writer) (*output, error) {
	if path == "" || path == "-" {
		o := &output{w: bufio.NewWriterSize(stdout, outputBuffer)}
		if f, ok := stdout.(*os.File); ok {
			o.file = f
			info, err := f.Stat()
			o.sync = err == nil && info.Mode().IsRegular()
		}
		return o, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output: %w", err)
	}
	if err := cutPartialLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open output %s: %w", path, err)
	}
	return &output{w: bufio.NewWriterSize(f, outputBuffer), file: f, sync: true}, nil
}

// cutPartialLine truncates the file after its last newline. A run killed while flushing can
// leave half a line at the end; that line's event was not committed (commits come after a
// complete flush), so it comes again, and the half would only corrupt the next line.
func cutPartialLine(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	end := info.Size()
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		n := min(int64(len(buf)), pos)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if keep := pos + int64(i) + 1; keep < end {
				return f.Truncate(keep)
			}
			return nil
		}
	}
	if end > 0 { // no newline at all: the whole file is one partial line
		return f.Truncate(0)
	}
	return nil
}

func (o *output) writeLine(line []byte) error {
	if _, err := o.w.Write(line); err != nil {
		return err
	}
	return o.w.WriteByte('\n')
}

func (o *output) flush() error {
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// durable flushes and, for a file, fsyncs.
func (o *output) durable() error {
	if err := o.flush(); err != nil {
		return err
	}
	if o.sync {
		if err := o.file.Sync(); err != nil {
			return fmt.Errorf("sync output: %w", err)
		}
	}
	return nil
}

// close flushes and closes a file opened here; stdout stays open.
func (o *output) close(path string) error {
	err := o.flush()
	if path != "" && path != "-" {
		err = errors.Join(err, o.file.Close())
	}
	return err
}
