package redis

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestGoneConsumersAreForgotten leaves two names in the group, one holding an entry and one
// holding none, both silent for longer than ForgetIdle. Only the empty one is deleted: the
// other's entry would be lost from the group with it. A name deleted while its replica was
// in fact alive, only idle on a quiet stream, costs nothing: its next read brings it back.
func TestGoneConsumersAreForgotten(t *testing.T) {
	t.Parallel()
	b := openTest(t, Options{Consumer: "alive", ClaimIdle: time.Hour, ForgetIdle: 300 * time.Millisecond})
	ctx := context.Background()
	publish(t, b, newEvents("held", 3))
	readAsDeadConsumer(t, b, "gone-holding", 1)
	if err := b.client.XGroupCreateConsumer(ctx, b.stream, b.opts.Group, "gone-empty").Err(); err != nil {
		t.Fatal(err)
	}
	live := &consumer{Broker: b, name: "alive"}
	names := func() []string { return consumerNames(t, b) }

	live.forgetGone(ctx) // nobody has been silent long enough yet
	if got := names(); !slices.Equal(got, []string{"gone-empty", "gone-holding"}) {
		t.Fatalf("consumers %v right after they spoke, want both kept", got)
	}
	time.Sleep(b.opts.ForgetIdle + 100*time.Millisecond)
	live.forgetGone(ctx)
	if got := names(); !slices.Equal(got, []string{"gone-holding"}) {
		t.Fatalf("consumers %v, want the empty gone one deleted and the holding one kept", got)
	}
	if n, err := pendingCount(ctx, b); err != nil || n != 1 {
		t.Fatalf("pending entries %d, %v; want the gone consumer's 1 still pending", n, err)
	}

	publish(t, b, newEvents("later", 2))
	msgs, err := live.read(ctx, ">", -1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read after the forgetting: %d entries, %v; want the new one", len(msgs), err)
	}
	if got := names(); !slices.Equal(got, []string{"alive", "gone-holding"}) {
		t.Fatalf("consumers %v, want alive back with its read", got)
	}
}

// consumerNames lists the group's consumers, sorted.
func consumerNames(t *testing.T, b *Broker) []string {
	t.Helper()
	consumers, err := b.client.XInfoConsumers(context.Background(), b.stream, b.opts.Group).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range consumers {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

func pendingCount(ctx context.Context, b *Broker) (int64, error) {
	p, err := b.client.XPending(ctx, b.stream, b.opts.Group).Result()
	if err != nil {
		return 0, err
	}
	return p.Count, nil
}
