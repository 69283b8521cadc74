using Microsoft.EntityFrameworkCore;

namespace AiMass.Registry.Storage;

/// <summary>The registry's tables. Table and column names are snake_case so that SQL consoles read naturally.</summary>
public sealed class RegistryDbContext(DbContextOptions<RegistryDbContext> options) : DbContext(options)
{
    internal DbSet<ModelRow> Models => Set<ModelRow>();
    internal DbSet<ModelTagRow> ModelTags => Set<ModelTagRow>();
    internal DbSet<VersionRow> Versions => Set<VersionRow>();
    internal DbSet<VersionTagRow> VersionTags => Set<VersionTagRow>();
    internal DbSet<AliasRow> Aliases => Set<AliasRow>();
    internal DbSet<AliasEventRow> AliasEvents => Set<AliasEventRow>();

    /// <inheritdoc />
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        modelBuilder.Entity<ModelRow>(e =>
        {
            e.ToTable("models");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(128);
            e.Property(x => x.Description).HasColumnName("description");
            e.Property(x => x.LatestVersion).HasColumnName("latest_version");
            e.Property(x => x.VersionCount).HasColumnName("version_count");
            e.Property(x => x.CreatedAtMs).HasColumnName("created_at_ms");
            e.Property(x => x.UpdatedAtMs).HasColumnName("updated_at_ms");
            e.HasIndex(x => x.Name).IsUnique();
            e.HasIndex(x => new { x.CreatedAtMs, x.Id });
            e.HasIndex(x => new { x.UpdatedAtMs, x.Id });
            e.HasMany(x => x.Tags).WithOne().HasForeignKey(x => x.ModelId).OnDelete(DeleteBehavior.Cascade);
            e.HasMany(x => x.Aliases).WithOne().HasForeignKey(x => x.ModelId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<ModelTagRow>(e =>
        {
            e.ToTable("model_tags");
            e.HasKey(x => new { x.ModelId, x.Key });
            e.Property(x => x.ModelId).HasColumnName("model_id");
            e.Property(x => x.Key).HasColumnName("key");
            e.Property(x => x.Value).HasColumnName("value");
            e.HasIndex(x => new { x.Key, x.Value });
        });
        modelBuilder.Entity<VersionRow>(e =>
        {
            e.ToTable("model_versions");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.ModelId).HasColumnName("model_id");
            e.Property(x => x.Version).HasColumnName("version");
            e.Property(x => x.Status).HasColumnName("status").HasConversion<string>().HasMaxLength(16);
            e.Property(x => x.StatusMessage).HasColumnName("status_message");
            e.Property(x => x.Format).HasColumnName("format").HasMaxLength(32);
            e.Property(x => x.Digest).HasColumnName("digest").HasMaxLength(71);
            e.Property(x => x.Size).HasColumnName("size");
            e.Property(x => x.SignatureJson).HasColumnName("signature_json");
            e.Property(x => x.ParamsJson).HasColumnName("params_json");
            e.Property(x => x.MetricsJson).HasColumnName("metrics_json");
            e.Property(x => x.Description).HasColumnName("description");
            e.Property(x => x.Source).HasColumnName("source");
            e.Property(x => x.DatasetDigest).HasColumnName("dataset_digest");
            e.Property(x => x.ParentModel).HasColumnName("parent_model");
            e.Property(x => x.ParentVersion).HasColumnName("parent_version");
            e.Property(x => x.CreatedAtMs).HasColumnName("created_at_ms");
            e.Property(x => x.UpdatedAtMs).HasColumnName("updated_at_ms");
            e.HasOne(x => x.Model).WithMany().HasForeignKey(x => x.ModelId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(x => new { x.ModelId, x.Version }).IsUnique();
            e.HasIndex(x => new { x.ModelId, x.Status, x.Version });
            e.HasIndex(x => x.Digest);
            e.HasIndex(x => new { x.ParentModel, x.ParentVersion });
            e.HasMany(x => x.Tags).WithOne().HasForeignKey(x => x.VersionId).OnDelete(DeleteBehavior.Cascade);
        });
        modelBuilder.Entity<VersionTagRow>(e =>
        {
            e.ToTable("version_tags");
            e.HasKey(x => new { x.VersionId, x.Key });
            e.Property(x => x.VersionId).HasColumnName("version_id");
            e.Property(x => x.Key).HasColumnName("key");
            e.Property(x => x.Value).HasColumnName("value");
            e.HasIndex(x => new { x.Key, x.Value });
        });
        modelBuilder.Entity<AliasRow>(e =>
        {
            e.ToTable("aliases");
            e.HasKey(x => new { x.ModelId, x.Name });
            e.Property(x => x.ModelId).HasColumnName("model_id");
            e.Property(x => x.Name).HasColumnName("name").HasMaxLength(64);
            e.Property(x => x.Version).HasColumnName("version");
            e.Property(x => x.UpdatedAtMs).HasColumnName("updated_at_ms");
            e.HasIndex(x => new { x.ModelId, x.Version });
            e.HasIndex(x => x.Name);
        });
        modelBuilder.Entity<AliasEventRow>(e =>
        {
            e.ToTable("alias_events");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.ModelId).HasColumnName("model_id");
            e.Property(x => x.Alias).HasColumnName("alias").HasMaxLength(64);
            e.Property(x => x.Action).HasColumnName("action").HasConversion<string>().HasMaxLength(16);
            e.Property(x => x.Version).HasColumnName("version");
            e.Property(x => x.PreviousVersion).HasColumnName("previous_version");
            e.Property(x => x.AtMs).HasColumnName("at_ms");
            e.Property(x => x.Actor).HasColumnName("actor");
            e.Property(x => x.Reason).HasColumnName("reason");
            e.Property(x => x.UndoneBy).HasColumnName("undone_by");
            e.HasOne<ModelRow>().WithMany().HasForeignKey(x => x.ModelId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(x => new { x.ModelId, x.Alias, x.Id });
        });
    }
}
