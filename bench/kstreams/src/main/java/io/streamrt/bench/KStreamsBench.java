package io.streamrt.bench;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The Kafka Streams baseline of streamrt's side-by-side benchmark. It runs one
 * of two topologies from an input topic to an output topic until SIGTERM:
 *
 * <ul>
 *   <li>{@code identity}: every record to the output unchanged;
 *   <li>{@code count}: {@code groupByKey().count()}, each updated count written to
 *       the output as a decimal string, as streamrt's clickcount guest emits it.
 * </ul>
 *
 * <p>Only the application id, the brokers, the guarantee, the state directory and
 * {@code commit.interval.ms=100} (streamrt's default commit interval) are set;
 * everything else, the record cache and the number of stream threads included,
 * is Kafka Streams' default.
 *
 * <p>Exit status: 0 after SIGTERM or SIGINT, 1 when a stream thread fails, 2 on a
 * usage error.
 */
public final class KStreamsBench {
    private static final String USAGE =
            "usage: java -jar streamrt-kstreams-bench.jar BOOTSTRAP APPLICATION_ID INPUT OUTPUT"
                    + " identity|count at_least_once|exactly_once_v2 STATE_DIR";

    private KStreamsBench() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 7) {
            usage("want 7 arguments, got " + args.length);
        }
        String bootstrap = args[0];
        String applicationId = args[1];
        String input = args[2];
        String output = args[3];
        String topology = args[4];
        String guarantee = args[5];
        String stateDir = args[6];
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            usage("unknown guarantee " + guarantee);
        }

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);

        KafkaStreams streams = new KafkaStreams(build(topology, input, output), props);
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean();
        streams.setStateListener((now, before) -> {
            System.err.println("kstreams-bench: " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                stopped.countDown();
            } else if (now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams-bench: a stream thread failed: " + e);
            e.printStackTrace();
            failed.set(true);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        // close waits for the threads to commit; bounded so that a stuck close
        // cannot hold the benchmark. (The consumer does not leave the group on
        // close, Kafka Streams' default: the group empties when its session ends.)
        Duration close = Duration.ofSeconds(30);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(close), "kstreams-bench-close"));
        streams.start();
        stopped.await();
        if (failed.get()) {
            // close may not be called from the state listener's thread: here it can.
            streams.close(close);
            System.exit(1);
        }
    }

    private static Topology build(String topology, String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        switch (topology) {
            case "identity" -> builder
                    .stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                    .to(output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
            // Keys as Bytes, which compare by content, for the count's store.
            case "count" -> builder
                    .stream(input, Consumed.with(Serdes.Bytes(), Serdes.ByteArray()))
                    .groupByKey(Grouped.with(Serdes.Bytes(), Serdes.ByteArray()))
                    .count()
                    .toStream()
                    .mapValues(n -> Long.toString(n))
                    .to(output, Produced.with(Serdes.Bytes(), Serdes.String()));
            default -> usage("unknown topology " + topology);
        }
        return builder.build();
    }

    private static void usage(String problem) {
        System.err.println("kstreams-bench: " + problem);
        System.err.println(USAGE);
        System.exit(2);
    }
}
