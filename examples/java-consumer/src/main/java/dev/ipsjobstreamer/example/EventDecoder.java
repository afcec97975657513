package dev.ipsjobstreamer.example;

import static java.nio.charset.StandardCharsets.UTF_8;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import io.cloudevents.CloudEvent;
import java.io.IOException;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * Turns one CloudEvent (already parsed from the Kafka headers by the CloudEvents SDK) into a typed
 * event, after checking it against contract v2: the type prefix, the JSON Schema its dataschema
 * names, and the sequence extension's scoping (job events: one source per job).
 */
public final class EventDecoder {
  public static final String TYPE_PREFIX = "dev.ips-job-streamer.";

  /** A decoded record: its short type (after the prefix) and the typed value; null if unknown. */
  public record Decoded(String shortType, Object value) {}

  /** A record that breaks the contract. */
  public static final class ContractViolation extends Exception {
    public ContractViolation(String message) {
      super(message);
    }
  }

  private final ObjectMapper mapper =
      new ObjectMapper()
          .registerModule(new JavaTimeModule())
          .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
  private final JsonSchemaFactory schemas =
      JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012);
  private final Path schemaDir;
  private final Map<String, JsonSchema> loaded = new HashMap<>();

  /** schemaDir holds the v2 schema files (e.g. from `streamer schemas export DIR`). */
  public EventDecoder(Path schemaDir) {
    this.schemaDir = schemaDir;
  }

  public Decoded decode(CloudEvent event) throws ContractViolation {
    if (!"1.0".equals(event.getSpecVersion().toString())) {
      throw new ContractViolation("specversion " + event.getSpecVersion());
    }
    String type = event.getType();
    if (!type.startsWith(TYPE_PREFIX)) {
      throw new ContractViolation("ce_type without the reverse-DNS prefix: " + type);
    }
    if (event.getData() == null) {
      throw new ContractViolation("no data: " + event.getId());
    }
    JsonNode data;
    try {
      data = mapper.readTree(event.getData().toBytes());
    } catch (IOException e) {
      throw new ContractViolation("data is not JSON: " + e.getMessage());
    }
    validate(event, data);
    String shortType = type.substring(TYPE_PREFIX.length());
    Class<?> target = classOf(shortType);
    if (target == null) {
      // A 2.x release may add event types: skip them, do not fail.
      return new Decoded(shortType, null);
    }
    Object value;
    try {
      value = mapper.treeToValue(data, target);
    } catch (IOException e) {
      throw new ContractViolation(shortType + " does not map to " + target.getSimpleName() + ": " + e);
    }
    checkHeaders(event, value);
    return new Decoded(shortType, value);
  }

  private static Class<?> classOf(String shortType) {
    if (shortType.startsWith("streamer.notification.")) {
      return Events.Notification.class;
    }
    return switch (shortType) {
      case "job.observed" -> Events.JobObserved.class;
      case "job.state_changed" -> Events.JobStateChanged.class;
      case "job.progress" -> Events.JobProgress.class;
      case "job.completed" -> Events.JobCompleted.class;
      case "job.stalled" -> Events.JobStalled.class;
      case "job.recovered" -> Events.JobRecovered.class;
      case "job.latest" -> Events.JobLatest.class;
      case "streamer.heartbeat" -> Events.Heartbeat.class;
      default -> null;
    };
  }

  private void validate(CloudEvent event, JsonNode data) throws ContractViolation {
    URI dataschema = event.getDataSchema();
    if (dataschema == null) {
      throw new ContractViolation("no ce_dataschema: " + event.getId());
    }
    String path = dataschema.getPath();
    String file = path.substring(path.lastIndexOf('/') + 1);
    if (!file.endsWith(".v2.json")) {
      throw new ContractViolation("not a v2 schema: " + dataschema);
    }
    JsonSchema schema = loaded.get(file);
    if (schema == null) {
      try {
        schema = schemas.getSchema(mapper.readTree(Files.readAllBytes(schemaDir.resolve(file))));
      } catch (IOException e) {
        throw new ContractViolation("cannot read schema " + file + ": " + e);
      }
      loaded.put(file, schema);
    }
    Set<ValidationMessage> errors = schema.validate(data);
    if (!errors.isEmpty()) {
      throw new ContractViolation(event.getId() + " breaks " + file + ": " + errors);
    }
  }

  private static void checkHeaders(CloudEvent event, Object value) throws ContractViolation {
    if (value instanceof Events.JobEvent job) {
      String sequence = String.valueOf(event.getExtension("sequence"));
      if (Long.parseLong(sequence) != job.sequence()) {
        throw new ContractViolation("ce_sequence " + sequence + " != sequence " + job.sequence());
      }
      String source = event.getSource().getRawPath();
      String last = URLDecoder.decode(source.substring(source.lastIndexOf('/') + 1), UTF_8);
      if (!source.contains("/jobs/") || !last.equals(job.jobHandle())) {
        throw new ContractViolation("ce_source is not the job's: " + event.getSource());
      }
      if (!job.jobHandle().equals(event.getSubject())) {
        throw new ContractViolation("ce_subject " + event.getSubject());
      }
    }
    if (value instanceof Events.StreamEvent any && !any.eventId().equals(event.getId())) {
      throw new ContractViolation("ce_id " + event.getId() + " != eventId " + any.eventId());
    }
    if (value instanceof Events.StreamEvent any && !any.type().equals(event.getType())) {
      throw new ContractViolation("type " + any.type() + " != ce_type " + event.getType());
    }
  }
}
