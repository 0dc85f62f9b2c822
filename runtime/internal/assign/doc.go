// Package assign is streamrt's consumer-group balancer: a franz-go
// kgo.GroupBalancer that puts partition p of every co-partitioned topic on the
// same instance, keeps partitions where they are across rebalances, and tells
// every instance the whole task→instance map with each instance's query
// address, so that any instance can route a query to the owner of a key.
//
// # Balancing
//
// A task unit is partition p of every topic in one co-partition set
// (Config.Groups, sets sharing a topic merged; a subscribed topic in no set is
// a set of its own). Units move between members whole. The leader:
//
//  1. finds each unit's current owner from the partitions members say they
//     own (the standard OwnedPartitions of the consumer protocol): the member
//     owning most of the unit's partitions, counting for each partition only
//     the claims from the highest generation claiming it (KIP-792: an older
//     claim is stale); ties go to the higher generation, then the first member;
//  2. leaves every owned unit with its owner;
//  3. gives each unowned unit (new partitions, a departed member's units) to
//     the least loaded member, preferring the one with fewest units of the
//     same set, so that each stage's tasks spread out;
//  4. moves units one at a time from the most to the least loaded member
//     while their counts differ by two or more.
//
// So loads (units per member) differ by at most one, and a rebalance moves
// only what must move: a member that leaves loses only its own units, and a
// member that joins takes about 1/n of the units from the most loaded
// members. Members are ordered by static instance ID, then member ID, and the
// result is a deterministic function of the members' metadata and the
// partition counts.
//
// Co-partitioned topics must have equal partition counts (the runtime checks
// this at start). If they do not, the balancer does not fail: unit p holds
// the set's topics that have a partition p.
//
// Subscriptions: all members of an app normally subscribe to the same topics.
// If they differ (a rolling deploy that adds a stage), a unit goes only to
// members subscribed to every topic in it, and loads are evened out only
// among the members that can take a unit, so they may differ by more than one.
// If no member subscribes to all of a unit's topics, its partitions are
// assigned topic by topic, each to a member subscribed to that topic, and
// co-partitioning does not hold for it. The leader balances with its own
// Config.Groups; members with another topology should not share a group.
//
// # Standby replicas
//
// With Config.Standbys = n > 0, the leader also gives each unit's partitions
// to up to n members other than its owner, as Member.Standbys: those members
// keep a warm copy of the unit's state so that, should the owner die, the
// member the unit goes to replays only the changelog's tail. A moving unit's
// planned owner is its first standby (it is not active until the follow-up
// rebalance, and starts copying meanwhile). The others are picked unit by
// unit by fewest standbys so far, a member that already holds the unit's
// state (a standby it advertises in its metadata, or the unit it owned)
// counting one fewer, so that standbys stay put unless that unbalances them
// by two or more. When the owner leaves, its units go to the least loaded
// members as in step 3 of balancing, and among equally loaded ones to a
// member with a standby copy.
//
// # Cooperative, not eager
//
// The balancer is cooperative (KIP-429; IsCooperative reports true). Under
// the eager protocol every member revokes all of its partitions at every
// rebalance. The engine answers a revocation by closing the task and dropping
// its local store partitions (OnPartitionsRevoked), so an eager rebalance
// would stop every task of the app and make every instance restore its state
// from the changelogs, even for the tasks that end up where they were.
// Cooperatively, a member keeps processing (and serving queries for) the
// partitions it keeps while the group rebalances, and only moving partitions
// pause.
//
// The two-phase rule is franz-go's own (kgo.BalancePlan.AdjustCooperative, the
// same step the cooperative-sticky balancer takes): a partition planned onto
// a member other than its current owner is left out of this generation's
// assignment. Its owner sees it missing, revokes it (OnPartitionsRevoked), and
// rejoins; franz-go does that rejoin by itself for a cooperative balancer. In
// the follow-up rebalance the partition is unowned and goes to the least
// loaded member, normally the one it was planned for. A join thus settles in
// two rebalances, a departure in one (nothing is revoked from the
// survivors). No partition is ever assigned to two members at once. Between the two phases the map in every member's
// Snapshot shows moving partitions with no owner (Assignment.Owner reports
// ok=false): a query for them should get a retryable status.
//
// # Encodings
//
// The balancer uses the standard "consumer" protocol encodings
// (kmsg.ConsumerMemberMetadata version 3 and kmsg.ConsumerMemberAssignment
// version 0), so tools that describe groups show subscriptions and
// assignments. streamrt's own data goes in their UserData, each starting with
// a version byte. Integers are unsigned varints (uvarint), the generation is
// a zigzag varint, and a string is its uvarint byte length and its bytes.
//
// Member metadata UserData, version 1 (JoinGroup):
//
//	u8      version = 1
//	string  query address (host:port; may be empty)
//	uvarint number of topics, then for each, in increasing name order:
//	  string  topic
//	  plist   standby partitions this member keeps warm
//
// Assignment UserData, version 1 (SyncGroup), the whole group's assignment as
// seen by one recipient:
//
//	u8      version = 1
//	varint  generation the assignment is for
//	uvarint index of the recipient in the member list
//	uvarint number of topics T, then T topic names, in increasing order
//	uvarint number of members (≥ 1), then for each, in increasing ID order:
//	  string  member ID
//	  string  query address
//	  tplist  active partitions
//	  tplist  standby partitions
//
//	tplist: uvarint number of entries, then for each, by increasing index:
//	  uvarint topic index into the T names
//	  plist
//	plist: uvarint count n ≥ 1, uvarint first partition, then n-1 uvarint
//	  gaps (≥ 1) to the previous partition
//
// Decoders are strict: unsorted or duplicate entries, a partition owned by two
// members, out-of-range values, truncation and trailing bytes are ErrMalformed;
// the recipient's active partitions must equal the standard assignment's. A
// version byte of 0 is malformed; one above what this build knows is a
// *VersionError (ErrUnsupportedVersion): the leader refuses to balance a group
// with such a member, and a member refuses such an assignment, each naming
// the version.
//
// Adding fields (task lag for lag-aware placement, say):
// bump the version, keep decoding every older version, and roll out in two
// steps, first a build that decodes the new version but still writes the old
// one, then a build that writes the new one; an instance of the first build
// never meets bytes it cannot read.
//
// # Use
//
// One Balancer per consumer client, passed as that client's only balancer:
//
//	bal := assign.New(assign.Config{QueryAddr: advertised, Groups: sets})
//	cl, err := kgo.NewClient(kgo.ConsumerGroup(group), kgo.ConsumeTopics(inputs...),
//		kgo.Balancers(bal), kgo.BlockRebalanceOnPoll(), ...)
//
// The group must use the classic protocol (no kgo.ServerSideBalancer: with
// KIP-848 the broker assigns and client balancers are not consulted).
// bal.Snapshot and bal.Watch give this instance's view of the group; the
// snapshot changes when this member syncs, and is marked Rebalancing when it
// starts to rejoin.
//
// Every member's assignment carries the whole map, so the SyncGroup request
// and the group's record in __consumer_offsets grow with members × map size,
// the map taking about a byte a partition plus each member's ID and address:
// 216 KB in all for 60 members with short IDs and 1,280 partitions
// (BenchmarkLeaderBalance). Kafka keeps that record under the offsets topic's
// max.message.bytes (1 MB by default); with franz-go's ~40-byte member IDs a
// group of about a hundred members over a thousand partitions reaches it.
package assign
