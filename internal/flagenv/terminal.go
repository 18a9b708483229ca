package flagenv

import (
	"io"
	"os"
)

// Terminal returns w when it is a terminal, else nil: a command draws its progress there
// only, so that CI logs and pipes never fill with redrawn status lines.
func Terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	info, err := f.Stat()
	if err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return f
}
