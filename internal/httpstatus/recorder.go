// Package httpstatus remembers the status a handler sent, for the middleware of both the API
// (access log, panics) and the metrics (request counts by status).
package httpstatus

import "net/http"

// Recorder is a ResponseWriter that remembers the first status sent; 0 while nothing was.
type Recorder struct {
	http.ResponseWriter
	Status int
}

// Of returns w as a Recorder, w itself if it is one already, so that middleware stacked on
// middleware shares one.
func Of(w http.ResponseWriter) *Recorder {
	if rec, ok := w.(*Recorder); ok {
		return rec
	}
	return &Recorder{ResponseWriter: w}
}

func (r *Recorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and write deadlines through the recorder,
// which the NDJSON export needs to stream.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
