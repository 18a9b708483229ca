package redis

import (
	"context"
	"fmt"
	"maps"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Persistence is how Redis keeps its data across its own restarts. A 202 from /publish means
// the events are in Redis; they survive an aggregator crash either way, but a Redis restart
// only with the append-only file on.
type Persistence struct {
	AppendOnly  bool   // every write is logged to the append-only file
	AppendFsync string // always, everysec or no: how often that file reaches the disk
	Save        string // the RDB snapshot schedule; "" for none
}

// Persistence reads Redis's persistence settings. Managed Redis services often forbid
// CONFIG; the error says so then.
func (b *Broker) Persistence(ctx context.Context) (Persistence, error) {
	config := map[string]string{}
	// One parameter per CONFIG GET: Redis before 7 takes no more.
	cmds, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, name := range []string{"appendonly", "appendfsync", "save"} {
			p.ConfigGet(ctx, name)
		}
		return nil
	})
	if err != nil {
		return Persistence{}, fmt.Errorf("read redis persistence config: %w", err)
	}
	for _, cmd := range cmds {
		maps.Copy(config, cmd.(*goredis.MapStringStringCmd).Val())
	}
	return Persistence{
		AppendOnly:  strings.EqualFold(config["appendonly"], "yes"),
		AppendFsync: config["appendfsync"],
		Save:        config["save"],
	}, nil
}

// checkPersistence warns, once at start, when queued events would not survive Redis.
func (b *Broker) checkPersistence(ctx context.Context) {
	p, err := b.Persistence(ctx)
	switch {
	case err != nil:
		b.log.WarnContext(ctx, "cannot check redis persistence; events queued in redis may not survive its restart", "err", err)
	case !p.AppendOnly:
		b.log.WarnContext(ctx, "redis runs without appendonly: a 202 survives an aggregator crash but not a redis restart",
			"appendonly", "no", "save", p.Save)
	default:
		b.log.InfoContext(ctx, "redis persistence", "appendonly", "yes", "appendfsync", p.AppendFsync, "save", p.Save)
	}
}
