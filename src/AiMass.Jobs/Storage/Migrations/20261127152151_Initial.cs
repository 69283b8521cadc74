using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AiMass.Jobs.Storage.Migrations
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "job_events",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    job_id = table.Column<long>(type: "INTEGER", nullable: true),
                    node = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    time_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    message = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_events", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "jobs",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    spec_text = table.Column<string>(type: "TEXT", nullable: false),
                    queue = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    owner = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    priority = table.Column<int>(type: "INTEGER", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    reason = table.Column<string>(type: "TEXT", nullable: true),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    restarts = table.Column<int>(type: "INTEGER", nullable: false),
                    resume_from = table.Column<string>(type: "TEXT", nullable: true),
                    cancel_requested = table.Column<bool>(type: "INTEGER", nullable: false),
                    stop_kind = table.Column<string>(type: "TEXT", maxLength: 16, nullable: true),
                    submitted_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    started_at_ms = table.Column<long>(type: "INTEGER", nullable: true),
                    ended_at_ms = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_jobs", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "job_checkpoints",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    job_id = table.Column<long>(type: "INTEGER", nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    step = table.Column<long>(type: "INTEGER", nullable: true),
                    path = table.Column<string>(type: "TEXT", nullable: false),
                    time_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_checkpoints", x => x.id);
                    table.ForeignKey(
                        name: "FK_job_checkpoints_jobs_job_id",
                        column: x => x.job_id,
                        principalTable: "jobs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_metrics",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    job_id = table.Column<long>(type: "INTEGER", nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    step = table.Column<long>(type: "INTEGER", nullable: true),
                    time_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    value = table.Column<double>(type: "REAL", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_metrics", x => x.id);
                    table.ForeignKey(
                        name: "FK_job_metrics_jobs_job_id",
                        column: x => x.job_id,
                        principalTable: "jobs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_tasks",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    job_id = table.Column<long>(type: "INTEGER", nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    task_index = table.Column<int>(type: "INTEGER", nullable: false),
                    node = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    pid = table.Column<int>(type: "INTEGER", nullable: false),
                    process_start = table.Column<long>(type: "INTEGER", nullable: false),
                    log_path = table.Column<string>(type: "TEXT", nullable: false),
                    exit_path = table.Column<string>(type: "TEXT", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    exit_code = table.Column<int>(type: "INTEGER", nullable: true),
                    exit_description = table.Column<string>(type: "TEXT", nullable: true),
                    started_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    ended_at_ms = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_tasks", x => x.id);
                    table.ForeignKey(
                        name: "FK_job_tasks_jobs_job_id",
                        column: x => x.job_id,
                        principalTable: "jobs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_job_checkpoints_job_id_id",
                table: "job_checkpoints",
                columns: new[] { "job_id", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_job_events_job_id_id",
                table: "job_events",
                columns: new[] { "job_id", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_job_metrics_job_id_name_id",
                table: "job_metrics",
                columns: new[] { "job_id", "name", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_job_tasks_job_id_attempt_task_index",
                table: "job_tasks",
                columns: new[] { "job_id", "attempt", "task_index" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_jobs_owner_id",
                table: "jobs",
                columns: new[] { "owner", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_queue_id",
                table: "jobs",
                columns: new[] { "queue", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_state",
                table: "jobs",
                column: "state");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "job_checkpoints");

            migrationBuilder.DropTable(
                name: "job_events");

            migrationBuilder.DropTable(
                name: "job_metrics");

            migrationBuilder.DropTable(
                name: "job_tasks");

            migrationBuilder.DropTable(
                name: "jobs");
        }
    }
}
