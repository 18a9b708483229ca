package publisher

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

func payloadFor(topic string, r *rand.Rand) json.RawMessage {
	var p map[string]any
	switch topic {
	case "orders":
		p = map[string]any{
			"order_id":     fmt.Sprintf("ord-%08x", r.Uint32()),
			"customer_id":  fmt.Sprintf("cus-%05d", r.IntN(50_000)),
			"amount_cents": 199 + r.IntN(50_000),
			"currency":     pick(r, "EUR", "USD", "GBP"),
			"items":        1 + r.IntN(8),
		}
	case "payments":
		p = map[string]any{
			"payment_id":   fmt.Sprintf("pay-%08x", r.Uint32()),
			"order_id":     fmt.Sprintf("ord-%08x", r.Uint32()),
			"amount_cents": 199 + r.IntN(50_000),
			"method":       pick(r, "card", "paypal", "bank_transfer", "ideal"),
			"status":       pick(r, "authorized", "captured", "declined"),
		}
	case "shipments":
		p = map[string]any{
			"shipment_id": fmt.Sprintf("shp-%08x", r.Uint32()),
			"order_id":    fmt.Sprintf("ord-%08x", r.Uint32()),
			"carrier":     pick(r, "dhl", "ups", "fedex", "postnl"),
			"status":      pick(r, "label_created", "in_transit", "delivered"),
		}
	case "inventory":
		p = map[string]any{
			"sku":       fmt.Sprintf("SKU-%04d", r.IntN(10_000)),
			"warehouse": pick(r, "ams-1", "fra-2", "lon-1"),
			"delta":     r.IntN(41) - 20,
		}
	case "users":
		p = map[string]any{
			"user_id": fmt.Sprintf("usr-%06d", r.IntN(1_000_000)),
			"action":  pick(r, "created", "updated", "deleted"),
			"plan":    pick(r, "free", "pro", "team"),
		}
	case "clicks":
		p = map[string]any{
			"session_id": fmt.Sprintf("ses-%08x", r.Uint32()),
			"path":       fmt.Sprintf("/products/%d", r.IntN(5_000)),
			"referrer":   pick(r, "", "https://www.google.com/", "https://news.ycombinator.com/"),
		}
	default:
		p = map[string]any{
			"id":    fmt.Sprintf("%s-%08x", topic, r.Uint32()),
			"value": r.IntN(1_000),
			"ok":    r.IntN(2) == 0,
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("marshal a payload of plain values: %v", err)) // cannot happen
	}
	return b
}
