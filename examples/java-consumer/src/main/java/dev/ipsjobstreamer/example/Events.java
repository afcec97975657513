package dev.ipsjobstreamer.example;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;
import java.util.List;
import java.util.Map;

/**
 * Typed classes for every event type of contract v2. Every class ignores unknown fields: a 2.x
 * release may add optional fields (README "Compatibility rules"), and this consumer must keep
 * working when it does.
 */
public final class Events {
  private Events() {}

  /** The value of any record the streamer publishes on a public topic. */
  public sealed interface StreamEvent permits JobEvent, Heartbeat, Notification {
    String eventId();

    String type();

    String companyHandle();
  }

  /** Fields of the job events: the jobHandle and the per-job sequence. */
  public sealed interface JobEvent extends StreamEvent
      permits JobObserved, JobStateChanged, JobProgress, JobCompleted, JobStalled, JobRecovered {
    String jobHandle();

    long sequence();

    OffsetDateTime observedAt();
  }

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record TaskItemProgress(
      String itemName, double progress, String progressMessage, OffsetDateTime lastProgressUpdate) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record TaskProgress(
      String taskType,
      String taskState,
      long numProcessed,
      long numProcessing,
      long numPending,
      double progress,
      String progressMessage,
      OffsetDateTime lastProgressUpdate,
      List<TaskItemProgress> items) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Status(
      String state,
      int progress,
      String progressMessage,
      OffsetDateTime lastProgressUpdate,
      long totalSize,
      List<TaskProgress> taskProgress) {}

  /** The job's sub-job element (e.g. imageServingPublishJob): v2 writes its fields as an object. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public record SubJob(String element, Map<String, Object> fields) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Snapshot(
      String companyHandle,
      String jobHandle,
      String name,
      String originalName,
      String type,
      String submitUserEmail,
      String locale,
      String description,
      String serverName,
      OffsetDateTime startDate,
      OffsetDateTime triggerTime,
      Status status,
      SubJob subJob,
      Boolean truncated) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobObserved(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      Snapshot snapshot,
      boolean seenAfterStart)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobStateChanged(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      @JsonProperty("from") String fromState,
      @JsonProperty("to") String toState,
      Status status,
      boolean mayHaveSkipped)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobProgress(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      Status status,
      Double rate,
      OffsetDateTime eta)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Counts(
      long fileSuccess,
      long fileError,
      long fileWarning,
      long fileDuplicate,
      long fileUpdate,
      long totalFile,
      long transferSuccess,
      long transferError,
      long transferWarning) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record LogMessage(
      String message, String logType, String assetName, String assetType, OffsetDateTime at) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record LogMessages(
      List<LogMessage> errors, List<LogMessage> warnings, long errorTotal, long warningTotal) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobCompleted(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      String outcome,
      Counts counts,
      String logType,
      OffsetDateTime startedAt,
      OffsetDateTime endedAt,
      int logAttempts,
      Status lastStatus,
      boolean mayHaveSkipped,
      boolean reconciled,
      boolean observed,
      String jobName,
      String originalName,
      String jobType,
      String submitUserEmail,
      Double durationS,
      LogMessages logMessages)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobStalled(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      Status status,
      double stalledForS,
      String jobName,
      String originalName,
      String jobType,
      String submitUserEmail)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobRecovered(
      String eventId,
      String type,
      String companyHandle,
      String jobHandle,
      long sequence,
      OffsetDateTime observedAt,
      Status status,
      double stalledForS)
      implements JobEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Heartbeat(
      String eventId,
      String type,
      String companyHandle,
      OffsetDateTime polledAt,
      boolean ok,
      Double latencyS,
      Integer activeJobs,
      OffsetDateTime lastSuccessAt,
      String error)
      implements StreamEvent {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record Notification(
      String eventId,
      String type,
      String kind,
      String companyHandle,
      String message,
      OffsetDateTime at,
      String topic,
      String jobHandle)
      implements StreamEvent {}

  /** A value of the compacted latest topic: the checkpoint of one tracked job (not an event). */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public record JobLatest(
      String company,
      Snapshot snapshot,
      long sequence,
      OffsetDateTime lastSeenAt,
      boolean stalled,
      OffsetDateTime vanishedAt,
      int logAttempts) {}
}
