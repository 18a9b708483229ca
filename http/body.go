package http

import (
	"compress/gzip"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/uts-events/uts"
)

const (
	// defaultBodyTimeout bounds how long a client may take to send a body.
	defaultBodyTimeout = 30 * time.Second
	// defaultMaxBodyMemory bounds the body bytes held across all requests at once.
	defaultMaxBodyMemory = 256 << 20
	// firstBodyBuffer is where a body of unknown length starts; it doubles as it fills.
	firstBodyBuffer = 64 << 10
)

// bodyReader reads request bodies within three bounds: the size of one body, the time a
// client may take to send it, and the bytes held across all requests at once.
type bodyReader struct {
	maxBytes int64
	timeout  time.Duration
	budget   *bodyBudget
}

func newBodyReader(cfg Config) bodyReader {
	return bodyReader{maxBytes: cfg.Limits.MaxBodyBytes, timeout: cfg.BodyTimeout, budget: newBodyBudget(cfg.MaxBodyMemory, cfg.Limits.MaxBodyBytes)}
}

// read reads the whole body, decompressed if it is gzip. The claim holds the body's share of
// the memory budget until the caller releases it, once neither the body nor what was
// decoded from it is needed. A declared Content-Length is reserved before a byte is read,
// so a body that could never fit costs nothing; a body of unknown length (chunked, or gzip,
// whose Content-Length is the compressed size) reserves as its buffer grows.
func (br bodyReader) read(w http.ResponseWriter, r *http.Request) ([]byte, *bodyClaim, error) {
	gzipped, err := gzipEncoded(r.Header)
	if err != nil {
		return nil, nil, err
	}
	if r.ContentLength > br.maxBytes {
		return nil, nil, br.tooLarge()
	}
	// The deadline covers the body only: it is lifted once the body is in, so that waiting
	// for the commit is not cut short. Recorders in tests cannot set one, which is fine.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(br.timeout))
	claim := &bodyClaim{budget: br.budget}
	var body []byte
	if !gzipped && r.ContentLength >= 0 {
		body, err = br.readDeclared(r.Body, r.ContentLength, claim)
	} else {
		body, err = br.readGrowing(w, r.Body, gzipped, claim)
	}
	if err != nil {
		claim.release()
		// net/http reads what is left of an unread body before it answers, to keep the
		// connection; from a client too slow or too large that would wait without end. A
		// deadline already past makes that read fail, and the connection is closed instead.
		_ = rc.SetReadDeadline(time.Now())
		return nil, nil, err
	}
	_ = rc.SetReadDeadline(time.Time{})
	return body, claim, nil
}

func (br bodyReader) tooLarge() error {
	return uts.Errorf(uts.KindTooLarge, "the body is larger than %d bytes", br.maxBytes)
}

// readDeclared reads a body of a declared length into one buffer of exactly that size.
func (br bodyReader) readDeclared(body io.Reader, length int64, claim *bodyClaim) ([]byte, error) {
	if err := claim.grow(length); err != nil {
		return nil, err
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, br.readError(err)
	}
	return buf, nil
}

// readGrowing reads a body of unknown length, doubling its buffer and its claim as it fills.
func (br bodyReader) readGrowing(w http.ResponseWriter, body io.Reader, gzipped bool, claim *bodyClaim) ([]byte, error) {
	src := http.MaxBytesReader(w, io.NopCloser(body), br.maxBytes)
	if gzipped {
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, br.readError(err)
		}
		src = io.NopCloser(zr)
	}
	// One byte past the limit tells an over-long body, compressed or not, from one at it.
	limit := br.maxBytes + 1
	size := min(int64(firstBodyBuffer), limit)
	if err := claim.grow(size); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	for {
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > br.maxBytes {
			return nil, br.tooLarge()
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, br.readError(err)
		}
		if len(buf) == cap(buf) {
			size = min(2*int64(cap(buf)), limit)
			if err := claim.grow(size); err != nil {
				return nil, err
			}
			buf = append(make([]byte, 0, size), buf...)
		}
	}
}

// readError says why a body could not be read: too large, too slow, not gzip, or cut off.
func (br bodyReader) readError(err error) error {
	var maxErr *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxErr):
		return br.tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return &uts.Error{Kind: uts.KindTimeout, Err: err,
			Message: "the body did not arrive within " + br.timeout.String() + " (-body-timeout)"}
	case errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum):
		return &uts.Error{Kind: uts.KindMalformed, Message: "the body is not valid gzip", Err: err}
	}
	return &uts.Error{Kind: uts.KindMalformed, Message: "the body could not be read", Err: err}
}

// gzipEncoded reads Content-Encoding: none or identity is the body as it is, gzip is
// decompressed, and anything else is refused rather than read as JSON it is not.
func gzipEncoded(h http.Header) (bool, error) {
	codings := h.Values("Content-Encoding")
	switch len(codings) {
	case 0:
		return false, nil
	case 1:
		switch strings.ToLower(strings.TrimSpace(codings[0])) {
		case "", "identity":
			return false, nil
		case "gzip", "x-gzip":
			return true, nil
		}
	}
	return false, uts.Errorf(uts.KindUnsupported,
		"Content-Encoding %q is not supported; send gzip or no encoding", strings.Join(codings, ", "))
}
