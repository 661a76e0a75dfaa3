// Package topic is gridmap's cluster-wide publish/subscribe: Topic[T], looked up by name on a
// member like a map (New on gridmap.Member.Topics), Publish on any member, Subscribe on any
// member.
//
// # Order and delivery
//
// A topic lives in the partition of its name: the owner of that partition numbers every
// message, 1, 2, 3, ..., stores it in the topic's ring and replicates it to the partition's
// synchronous backups before Publish returns. Every subscriber delivers the messages in that
// order, each once: one order for all subscribers, which keeps each publisher's order. A
// publish retried by the engine across a failover is numbered once.
//
// Each member that has subscribers to a topic registers one cluster-wide listener with the
// owner (filtered there to new messages) and fans each message out to its local subscribers'
// bounded buffers. A subscriber whose buffer is full drops newer messages; whenever it sees a
// gap in the sequence (it was slow, an event was dropped on its way, a failover lost or
// repeated events), it reads the missing messages from the ring, and reports those the ring no
// longer holds in a notice (Message.Missed) with their exact count. Duplicates are discarded.
// When no message arrived for Config.ResyncInterval, each member with subscribers reads the
// ring's head once for all of them, so a message whose event a crash lost is delivered even if
// nothing is published after it.
//
// # Plain and reliable topics
//
// A plain topic's ring is small (DefaultPlainRing): it repairs short gaps. A reliable topic
// (Config.Reliable) keeps the last Config.RingCapacity messages: a subscriber may fall that far
// behind without loss, and a subscriber that went away, or runs on a member that just joined,
// resumes from a sequence number (FromSequence with Subscription.Next, or FromOldest).
// Nothing acknowledged is lost while the partition has a live replica.
//
// # Spreading the load
//
// One topic's publishes all go through one member, the owner of its partition. Topics of
// different names spread over the partitions (and so the members) like a map's keys; when one
// topic's owner becomes the limit, split it into several topics ("events-0" ... "events-7"),
// publish each message to one of them by a key (order is then kept per key), and subscribe to
// all of them.
//
// # Codecs and errors
//
// Messages are encoded with dmap's codecs (dmap.DefaultCodec unless WithCodec says otherwise);
// every member must use compatible codecs for a topic. Service.PublishBytes publishes raw bytes
// by a topic's name, for tools that know no type. Errors are this package's sentinels (the same
// values as dmap's), checked with errors.Is.
package topic
