using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AiMass.Jobs.Storage.Migrations
{
    /// <inheritdoc />
    public partial class Studies : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "studies",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    request_json = table.Column<string>(type: "TEXT", nullable: false),
                    owner = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    message = table.Column<string>(type: "TEXT", nullable: true),
                    registered = table.Column<string>(type: "TEXT", maxLength: 160, nullable: true),
                    created_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    ended_at_ms = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_studies", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "study_trials",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    study_id = table.Column<long>(type: "INTEGER", nullable: false),
                    number = table.Column<int>(type: "INTEGER", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    values_json = table.Column<string>(type: "TEXT", nullable: false),
                    value = table.Column<double>(type: "REAL", nullable: true),
                    job_id = table.Column<long>(type: "INTEGER", nullable: true),
                    retry_of = table.Column<int>(type: "INTEGER", nullable: true),
                    reason = table.Column<string>(type: "TEXT", nullable: true),
                    artifact = table.Column<string>(type: "TEXT", nullable: true),
                    log_path = table.Column<string>(type: "TEXT", nullable: true),
                    log_offset = table.Column<long>(type: "INTEGER", nullable: false),
                    started_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    ended_at_ms = table.Column<long>(type: "INTEGER", nullable: true),
                    heartbeat_ms = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_study_trials", x => x.id);
                    table.ForeignKey(
                        name: "FK_study_trials_studies_study_id",
                        column: x => x.study_id,
                        principalTable: "studies",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "study_trial_values",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    trial_id = table.Column<long>(type: "INTEGER", nullable: false),
                    step = table.Column<long>(type: "INTEGER", nullable: false),
                    value = table.Column<double>(type: "REAL", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_study_trial_values", x => x.id);
                    table.ForeignKey(
                        name: "FK_study_trial_values_study_trials_trial_id",
                        column: x => x.trial_id,
                        principalTable: "study_trials",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_studies_name",
                table: "studies",
                column: "name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_study_trial_values_trial_id_step",
                table: "study_trial_values",
                columns: new[] { "trial_id", "step" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_study_trials_study_id_number",
                table: "study_trials",
                columns: new[] { "study_id", "number" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "study_trial_values");

            migrationBuilder.DropTable(
                name: "study_trials");

            migrationBuilder.DropTable(
                name: "studies");
        }
    }
}
