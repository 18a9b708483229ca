package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// A replica joins the group under its host name, which changes with every container, so a
// long-lived group gathers the names of replicas that are gone. forgetScript deletes those
// that hold no pending entries and have had nothing delivered for ForgetIdle. Deleting a
// consumer with pending entries would lose them from the group; a name with none loses
// nothing. A live replica can look idle too (Redis 7.0 does not count a read that found
// nothing), and then its next delivery creates its name again. It is one script so that no
// delivery can come between the check and the delete.
// KEYS: the stream. ARGV: the group, the idle time in milliseconds. Returns how many it deleted.
var forgetScript = goredis.NewScript(`
local deleted = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local fields = {}
    for i = 1, #consumer, 2 do
        fields[consumer[i]] = consumer[i + 1]
    end
    if fields['pending'] == 0 and fields['idle'] > tonumber(ARGV[2]) then
        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
        deleted = deleted + 1
    end
end
return deleted
`)

// forgetGone deletes the group's consumers that are gone (see forgetScript). Failing is
// harmless: the names wait for the next scan.
func (c *consumer) forgetGone(ctx context.Context) {
	n, err := forgetScript.Run(ctx, c.client, []string{c.stream}, c.opts.Group, c.opts.ForgetIdle.Milliseconds()).Int()
	if err != nil {
		c.log.DebugContext(ctx, "forget gone consumers failed", "err", err)
		return
	}
	if n > 0 {
		c.log.InfoContext(ctx, "forgot consumers that were gone", "consumers", n, "idle_over", c.opts.ForgetIdle)
	}
}
