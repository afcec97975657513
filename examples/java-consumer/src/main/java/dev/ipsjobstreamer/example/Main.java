package dev.ipsjobstreamer.example;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads every public topic of one prefix with read_committed, decodes each record into a typed
 * v2 event, prints one line per event and, at the end, one SUMMARY line of JSON. Exits 1 when a
 * record breaks the contract.
 *
 * <p>Arguments: --bootstrap HOST:PORT --prefix ips --schemas DIR [--idle-ms 5000] [--max-ms 120000]
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    String prefix = opts.getOrDefault("prefix", "ips");
    long idleMs = Long.parseLong(opts.getOrDefault("idle-ms", "5000"));
    long maxMs = Long.parseLong(opts.getOrDefault("max-ms", "120000"));
    EventDecoder decoder = new EventDecoder(Path.of(opts.getOrDefault("schemas", "schemas")));

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.getOrDefault("bootstrap", "localhost:9092"));
    props.put(ConsumerConfig.GROUP_ID_CONFIG, opts.getOrDefault("group", "java-example-" + UUID.randomUUID()));
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");

    List<String> topics =
        List.of(
            prefix + ".jobs.state",
            prefix + ".jobs.progress",
            prefix + ".jobs.latest",
            prefix + ".streamer.heartbeat",
            prefix + ".streamer.notifications");
    Map<String, Integer> byType = new TreeMap<>();
    List<String> violations = new ArrayList<>();
    int records = 0;
    int tombstones = 0;
    // The CloudEvents SDK reads the binary-mode ce_* headers; tombstones (null value, no headers)
    // on the compacted latest topic are deletion markers, not events, and are counted apart.
    try (CloudEventDeserializer cloudEvents = new CloudEventDeserializer();
        KafkaConsumer<String, byte[]> consumer =
            new KafkaConsumer<>(props, new StringDeserializer(), new ByteArrayDeserializer())) {
      cloudEvents.configure(Map.of(), false);
      consumer.subscribe(topics);
      long start = System.currentTimeMillis();
      long lastRecord = start;
      while (System.currentTimeMillis() - lastRecord < idleMs
          && System.currentTimeMillis() - start < maxMs) {
        for (ConsumerRecord<String, byte[]> rec : consumer.poll(Duration.ofMillis(500))) {
          lastRecord = System.currentTimeMillis();
          records++;
          if (rec.value() == null) {
            tombstones++;
            continue;
          }
          try {
            CloudEvent event = cloudEvents.deserialize(rec.topic(), rec.headers(), rec.value());
            EventDecoder.Decoded decoded = decoder.decode(event);
            String key = decoded.value() == null ? "unknown:" + decoded.shortType() : decoded.shortType();
            byType.merge(key, 1, Integer::sum);
            String line = describe(decoded.value());
            if (line != null) {
              System.out.println(line);
            }
          } catch (EventDecoder.ContractViolation | RuntimeException e) {
            violations.add(rec.topic() + "@" + rec.partition() + ":" + rec.offset() + " " + e.getMessage());
          }
        }
      }
    }
    Map<String, Object> summary = new TreeMap<>();
    summary.put("records", records);
    summary.put("tombstones", tombstones);
    summary.put("byType", byType);
    summary.put("violations", violations);
    System.out.println("SUMMARY " + new ObjectMapper().writeValueAsString(summary));
    System.exit(violations.isEmpty() ? 0 : 1);
  }

  /** The line an on-call engineer reads for the events worth a line; null for the others. */
  static String describe(Object value) {
    if (value instanceof Events.JobCompleted c) {
      StringBuilder line =
          new StringBuilder(
              String.format(
                  "COMPLETED company=%s job=\"%s\" type=%s outcome=%s duration=%s",
                  c.companyHandle(), c.jobName(), c.jobType(), c.outcome(),
                  c.durationS() == null ? "?" : Math.round(c.durationS()) + "s"));
      if (c.logMessages() != null && !c.logMessages().errors().isEmpty()) {
        Events.LogMessage first = c.logMessages().errors().get(0);
        line.append(String.format(" errors=%d first_error=\"%s\"", c.logMessages().errorTotal(), first.message()));
        if (first.assetName() != null) {
          line.append(" asset=").append(first.assetName());
        }
      }
      return line.append(" handle=").append(c.jobHandle()).toString();
    }
    if (value instanceof Events.JobStalled s) {
      return String.format(
          "STALLED company=%s job=\"%s\" type=%s for=%.0fs handle=%s",
          s.companyHandle(), s.jobName(), s.jobType(), s.stalledForS(), s.jobHandle());
    }
    if (value instanceof Events.JobStateChanged s) {
      return String.format("STATE company=%s %s -> %s handle=%s", s.companyHandle(), s.fromState(), s.toState(), s.jobHandle());
    }
    if (value instanceof Events.JobObserved o) {
      String sub = o.snapshot().subJob() == null ? "-" : o.snapshot().subJob().element() + o.snapshot().subJob().fields().keySet();
      return String.format("OBSERVED company=%s job=\"%s\" type=%s subJob=%s", o.companyHandle(), o.snapshot().name(), o.snapshot().type(), sub);
    }
    if (value instanceof Events.Notification n) {
      return String.format("NOTIFY company=%s kind=%s %s", n.companyHandle(), n.kind(), n.message());
    }
    return null;
  }
}
