using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace AiMass.Jobs.Storage;

/// <summary>The job service's tables, in the same database as the registry (its own migration history).</summary>
public sealed class JobsDbContext(DbContextOptions<JobsDbContext> options) : DbContext(options)
{
    /// <summary>The migration history table, apart from the registry's.</summary>
    public const string HistoryTable = "__jobs_migrations";

    internal DbSet<JobRow> Jobs => Set<JobRow>();
    internal DbSet<TaskRow> Tasks => Set<TaskRow>();
    internal DbSet<EventRow> Events => Set<EventRow>();
    internal DbSet<CheckpointRow> Checkpoints => Set<CheckpointRow>();
    internal DbSet<MetricRow> Metrics => Set<MetricRow>();
    internal DbSet<NodeStateRow> NodeStates => Set<NodeStateRow>();
    internal DbSet<DeploymentRow> Deployments => Set<DeploymentRow>();
    internal DbSet<ReplicaRow> Replicas => Set<ReplicaRow>();
    internal DbSet<StudyRow> Studies => Set<StudyRow>();
    internal DbSet<TrialRow> Trials => Set<TrialRow>();
    internal DbSet<TrialValueRow> TrialValues => Set<TrialValueRow>();

    /// <inheritdoc />
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        modelBuilder.Entity<JobRow>(e =>
        {
            e.ToTable("jobs");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(128);
            e.Property(x => x.SpecText).HasColumnName("spec_text");
            e.Property(x => x.Queue).HasColumnName("queue").HasMaxLength(128);
            e.Property(x => x.Owner).HasColumnName("owner").HasMaxLength(128);
            e.Property(x => x.Priority).HasColumnName("priority");
            e.Property(x => x.State).HasColumnName("state").HasConversion<string>().HasMaxLength(16);
            e.Property(x => x.Reason).HasColumnName("reason");
            e.Property(x => x.Attempt).HasColumnName("attempt");
            e.Property(x => x.Restarts).HasColumnName("restarts");
            e.Property(x => x.ResumeFrom).HasColumnName("resume_from");
            e.Property(x => x.CancelRequested).HasColumnName("cancel_requested");
            e.Property(x => x.StopKind).HasColumnName("stop_kind").HasMaxLength(16);
            e.Property(x => x.SubmittedAtMs).HasColumnName("submitted_at_ms");
            e.Property(x => x.StartedAtMs).HasColumnName("started_at_ms");
            e.Property(x => x.EndedAtMs).HasColumnName("ended_at_ms");
            e.HasIndex(x => x.State);
            e.HasIndex(x => new { x.Queue, x.Id });
            e.HasIndex(x => new { x.Owner, x.Id });
        });
        modelBuilder.Entity<TaskRow>(e =>
        {
            e.ToTable("job_tasks");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.JobId).HasColumnName("job_id");
            e.Property(x => x.Attempt).HasColumnName("attempt");
            e.Property(x => x.TaskIndex).HasColumnName("task_index");
            e.Property(x => x.Node).HasColumnName("node").HasMaxLength(128);
            e.Property(x => x.Pid).HasColumnName("pid");
            e.Property(x => x.ProcessStart).HasColumnName("process_start");
            e.Property(x => x.LogPath).HasColumnName("log_path");
            e.Property(x => x.ExitPath).HasColumnName("exit_path");
            e.Property(x => x.State).HasColumnName("state").HasConversion<string>().HasMaxLength(16);
            e.Property(x => x.ExitCode).HasColumnName("exit_code");
            e.Property(x => x.ExitDescription).HasColumnName("exit_description");
            e.Property(x => x.StartedAtMs).HasColumnName("started_at_ms");
            e.Property(x => x.EndedAtMs).HasColumnName("ended_at_ms");
            e.HasIndex(x => new { x.JobId, x.Attempt, x.TaskIndex }).IsUnique();
            e.HasOne<JobRow>().WithMany().HasForeignKey(x => x.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<EventRow>(e =>
        {
            e.ToTable("job_events");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.JobId).HasColumnName("job_id");
            e.Property(x => x.Node).HasColumnName("node").HasMaxLength(128);
            e.Property(x => x.Deployment).HasColumnName("deployment").HasMaxLength(128);
            e.Property(x => x.TimeMs).HasColumnName("time_ms");
            e.Property(x => x.Kind).HasColumnName("kind").HasMaxLength(32);
            e.Property(x => x.Message).HasColumnName("message");
            e.HasIndex(x => new { x.JobId, x.Id });
            e.HasIndex(x => new { x.Deployment, x.Id });
        });
        modelBuilder.Entity<CheckpointRow>(e =>
        {
            e.ToTable("job_checkpoints");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.JobId).HasColumnName("job_id");
            e.Property(x => x.Attempt).HasColumnName("attempt");
            e.Property(x => x.Step).HasColumnName("step");
            e.Property(x => x.Path).HasColumnName("path");
            e.Property(x => x.TimeMs).HasColumnName("time_ms");
            e.HasIndex(x => new { x.JobId, x.Id });
            e.HasOne<JobRow>().WithMany().HasForeignKey(x => x.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<MetricRow>(e =>
        {
            e.ToTable("job_metrics");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.JobId).HasColumnName("job_id");
            e.Property(x => x.Attempt).HasColumnName("attempt");
            e.Property(x => x.Step).HasColumnName("step");
            e.Property(x => x.TimeMs).HasColumnName("time_ms");
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(128);
            e.Property(x => x.Value).HasColumnName("value");
            e.HasIndex(x => new { x.JobId, x.Name, x.Id });
            e.HasOne<JobRow>().WithMany().HasForeignKey(x => x.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<NodeStateRow>(e =>
        {
            e.ToTable("node_states");
            e.HasKey(x => x.Node);
            e.Property(x => x.Node).HasColumnName("node").HasMaxLength(128);
            e.Property(x => x.State).HasColumnName("state").HasMaxLength(16);
            e.Property(x => x.Reason).HasColumnName("reason");
            e.Property(x => x.TimeMs).HasColumnName("time_ms");
        });
        modelBuilder.Entity<DeploymentRow>(e =>
        {
            e.ToTable("deployments");
            e.HasKey(x => x.Name);
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(128);
            e.Property(x => x.SpecJson).HasColumnName("spec_json");
            e.Property(x => x.Desired).HasColumnName("desired");
            e.Property(x => x.Deleting).HasColumnName("deleting");
            e.Property(x => x.CreatedAtMs).HasColumnName("created_at_ms");
            e.Property(x => x.UpdatedAtMs).HasColumnName("updated_at_ms");
        });
        modelBuilder.Entity<ReplicaRow>(e =>
        {
            e.ToTable("deployment_replicas");
            e.HasKey(x => x.JobId);
            e.Property(x => x.JobId).HasColumnName("job_id").ValueGeneratedNever();
            e.Property(x => x.Deployment).HasColumnName("deployment").HasMaxLength(128);
            e.Property(x => x.Role).HasColumnName("role").HasMaxLength(16);
            e.Property(x => x.Version).HasColumnName("version");
            e.Property(x => x.Draining).HasColumnName("draining");
            e.Property(x => x.CreatedAtMs).HasColumnName("created_at_ms");
            e.HasIndex(x => x.Deployment);
            e.HasOne<DeploymentRow>().WithMany().HasForeignKey(x => x.Deployment).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<StudyRow>(e =>
        {
            e.ToTable("studies");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(128);
            e.Property(x => x.RequestJson).HasColumnName("request_json");
            e.Property(x => x.Owner).HasColumnName("owner").HasMaxLength(128);
            e.Property(x => x.State).HasColumnName("state").HasMaxLength(16);
            e.Property(x => x.Message).HasColumnName("message");
            e.Property(x => x.Registered).HasColumnName("registered").HasMaxLength(160);
            e.Property(x => x.CreatedAtMs).HasColumnName("created_at_ms");
            e.Property(x => x.EndedAtMs).HasColumnName("ended_at_ms");
            e.HasIndex(x => x.Name).IsUnique();
        });
        modelBuilder.Entity<TrialRow>(e =>
        {
            e.ToTable("study_trials");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.StudyId).HasColumnName("study_id");
            e.Property(x => x.Number).HasColumnName("number");
            e.Property(x => x.State).HasColumnName("state").HasMaxLength(16);
            e.Property(x => x.ValuesJson).HasColumnName("values_json");
            e.Property(x => x.Value).HasColumnName("value");
            e.Property(x => x.JobId).HasColumnName("job_id");
            e.Property(x => x.RetryOf).HasColumnName("retry_of");
            e.Property(x => x.Reason).HasColumnName("reason");
            e.Property(x => x.Artifact).HasColumnName("artifact");
            e.Property(x => x.LogPath).HasColumnName("log_path");
            e.Property(x => x.LogOffset).HasColumnName("log_offset");
            e.Property(x => x.StartedAtMs).HasColumnName("started_at_ms");
            e.Property(x => x.EndedAtMs).HasColumnName("ended_at_ms");
            e.Property(x => x.HeartbeatMs).HasColumnName("heartbeat_ms");
            // One trial per number: a second writer of the same trial fails instead of duplicating it.
            e.HasIndex(x => new { x.StudyId, x.Number }).IsUnique();
            e.HasOne<StudyRow>().WithMany().HasForeignKey(x => x.StudyId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<TrialValueRow>(e =>
        {
            e.ToTable("study_trial_values");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.TrialId).HasColumnName("trial_id");
            e.Property(x => x.Step).HasColumnName("step");
            e.Property(x => x.Value).HasColumnName("value");
            e.HasIndex(x => new { x.TrialId, x.Step }).IsUnique();
            e.HasOne<TrialRow>().WithMany().HasForeignKey(x => x.TrialId).OnDelete(DeleteBehavior.Cascade);
        });
    }

    /// <summary>Options for the SQLite database at <paramref name="path"/>.</summary>
    public static void Configure(DbContextOptionsBuilder options, string path)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.UseSqlite(
                new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString(),
                sqlite => sqlite.MigrationsHistoryTable(HistoryTable))
            .AddInterceptors(new Registry.Storage.SqlitePragmas());
    }
}

/// <summary>For <c>dotnet ef migrations add</c>.</summary>
internal sealed class JobsDesignTimeFactory : IDesignTimeDbContextFactory<JobsDbContext>
{
    public JobsDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<JobsDbContext>();
        JobsDbContext.Configure(options, "design.db");
        return new JobsDbContext(options.Options);
    }
}
