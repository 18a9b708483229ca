package publisher

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/uts-events/uts"
)

// knownTopics give small, realistic payloads; topics past these get a generic shape.
var knownTopics = []string{"orders", "payments", "shipments", "inventory", "users", "clicks"}

func topicNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		if i < len(knownTopics) {
			names[i] = knownTopics[i]
		} else {
			names[i] = fmt.Sprintf("topic-%02d", i+1)
		}
	}
	return names
}

var sources = map[string]string{
	"orders":    "checkout-service",
	"payments":  "payment-gateway",
	"shipments": "fulfilment-service",
	"inventory": "warehouse-sync",
	"users":     "account-service",
	"clicks":    "web-frontend",
}

func sourceFor(topic string, r *rand.Rand) string {
	name, ok := sources[topic]
	if !ok {
		name = topic + "-producer"
	}
	return fmt.Sprintf("%s-%d", name, r.IntN(4)+1)
}

func pick(r *rand.Rand, choices ...string) string { return choices[r.IntN(len(choices))] }

// payloadFor builds a topic's payload as canonical JSON (keys sorted, as json.Marshal sorts
// a map's), by appending rather than marshalling a map: at tens of thousands of events a
// second the publisher shares the machine with the aggregator it measures. The random draws
// happen in a fixed order, so a seed always gives the same payloads.
func payloadFor(topic string, r *rand.Rand) json.RawMessage {
	var o object
	switch topic {
	case "orders":
		orderID := fmt.Sprintf("ord-%08x", r.Uint32())
		customerID := fmt.Sprintf("cus-%05d", r.IntN(50_000))
		amount := 199 + r.IntN(50_000)
		currency := pick(r, "EUR", "USD", "GBP")
		items := 1 + r.IntN(8)
		o.int("amount_cents", amount).str("currency", currency).str("customer_id", customerID).
			int("items", items).str("order_id", orderID)
	case "payments":
		paymentID := fmt.Sprintf("pay-%08x", r.Uint32())
		orderID := fmt.Sprintf("ord-%08x", r.Uint32())
		amount := 199 + r.IntN(50_000)
		method := pick(r, "card", "paypal", "bank_transfer", "ideal")
		status := pick(r, "authorized", "captured", "declined")
		o.int("amount_cents", amount).str("method", method).str("order_id", orderID).
			str("payment_id", paymentID).str("status", status)
	case "shipments":
		shipmentID := fmt.Sprintf("shp-%08x", r.Uint32())
		orderID := fmt.Sprintf("ord-%08x", r.Uint32())
		carrier := pick(r, "dhl", "ups", "fedex", "postnl")
		status := pick(r, "label_created", "in_transit", "delivered")
		o.str("carrier", carrier).str("order_id", orderID).str("shipment_id", shipmentID).str("status", status)
	case "inventory":
		sku := fmt.Sprintf("SKU-%04d", r.IntN(10_000))
		warehouse := pick(r, "ams-1", "fra-2", "lon-1")
		delta := r.IntN(41) - 20
		o.int("delta", delta).str("sku", sku).str("warehouse", warehouse)
	case "users":
		userID := fmt.Sprintf("usr-%06d", r.IntN(1_000_000))
		action := pick(r, "created", "updated", "deleted")
		plan := pick(r, "free", "pro", "team")
		o.str("action", action).str("plan", plan).str("user_id", userID)
	case "clicks":
		sessionID := fmt.Sprintf("ses-%08x", r.Uint32())
		path := fmt.Sprintf("/products/%d", r.IntN(5_000))
		referrer := pick(r, "", "https://www.google.com/", "https://news.ycombinator.com/")
		o.str("path", path).str("referrer", referrer).str("session_id", sessionID)
	default:
		id := fmt.Sprintf("%s-%08x", topic, r.Uint32())
		value := r.IntN(1_000)
		ok := r.IntN(2) == 0
		o.str("id", id).boolean("ok", ok).int("value", value)
	}
	return o.close()
}

// object appends the members of a JSON object, given in key order.
type object struct{ b []byte }

func (o *object) key(k string) {
	if len(o.b) == 0 {
		o.b = append(make([]byte, 0, 128), '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = uts.AppendJSONString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *object) str(k, v string) *object {
	o.key(k)
	o.b = uts.AppendJSONString(o.b, v)
	return o
}

func (o *object) int(k string, v int) *object {
	o.key(k)
	o.b = strconv.AppendInt(o.b, int64(v), 10)
	return o
}

func (o *object) boolean(k string, v bool) *object {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
	return o
}

func (o *object) close() json.RawMessage {
	if len(o.b) == 0 {
		return json.RawMessage("{}")
	}
	return append(o.b, '}')
}
