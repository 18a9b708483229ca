package http

import (
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/uts-events/uts"
)

type committedAnswer struct {
	Received   int           `json:"received"`
	Unique     int           `json:"unique"`
	Duplicates int           `json:"duplicates"`
	Results    []uts.Outcome `json:"results,omitempty"`
}

type queuedAnswer struct {
	Received int `json:"received"`
	Queued   int `json:"queued"`
}

// handlePublish validates a batch and hands it to the broker. It answers 200 once the batch
// is committed, or 202 once it is durably queued: either way the events are safe.
func handlePublish(broker uts.Broker, lim uts.Limits, bodies bodyReader, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		wantResults, err := boolParam(r, "results")
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
			writeError(w, r, logger, err)
			return
		}
		body, claim, err := bodies.read(w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		// The decoded events are about the body's size and live until the answer: the claim
		// covers them too.
		defer claim.release()
		events, err := uts.DecodeBatch(body, lim)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		receipt, err := broker.Publish(r.Context(), events)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if !receipt.Committed {
			writeJSON(w, http.StatusAccepted, queuedAnswer{Received: len(events), Queued: len(events)})
			return
		}
		tally := uts.TallyOf(receipt.Outcomes)
		answer := committedAnswer{Received: len(events), Unique: tally.Unique, Duplicates: tally.Duplicates}
		if wantResults {
			answer.Results = receipt.Outcomes
			writeJSON(w, http.StatusOK, answer)
			return
		}
		// The common answer is built by hand: encoding/json's reflection was a visible
		// part of a single event's cost (issue #11). A test holds it to writeJSON's bytes.
		writeJSONBody(w, http.StatusOK, appendCountsAnswer(make([]byte, 0, 64), answer))
	}
}

// appendCountsAnswer appends a committedAnswer without results as writeJSON encodes it.
func appendCountsAnswer(b []byte, a committedAnswer) []byte {
	b = append(b, `{"received":`...)
	b = strconv.AppendInt(b, int64(a.Received), 10)
	b = append(b, `,"unique":`...)
	b = strconv.AppendInt(b, int64(a.Unique), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(a.Duplicates), 10)
	return append(b, "}\n"...)
}

// checkJSONContentType accepts JSON media types, with parameters, and a missing header:
// curl and many scripts send none.
func checkJSONContentType(contentType string) error {
	// The usual header is taken without parsing it: ParseMediaType allocates.
	if contentType == "" || contentType == "application/json" {
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err == nil && (mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")) {
		return nil
	}
	return uts.Errorf(uts.KindUnsupported, "Content-Type %q is not JSON; send application/json", contentType)
}

func boolParam(r *http.Request, name string) (bool, error) {
	if r.URL.RawQuery == "" { // the usual publish: nothing to parse
		return false, nil
	}
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return false, invalidParam(name, "must be true or false")
	}
	return v, nil
}
