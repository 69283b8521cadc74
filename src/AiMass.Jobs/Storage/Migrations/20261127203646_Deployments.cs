using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AiMass.Jobs.Storage.Migrations
{
    /// <inheritdoc />
    public partial class Deployments : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "deployment",
                table: "job_events",
                type: "TEXT",
                maxLength: 128,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "deployments",
                columns: table => new
                {
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    spec_json = table.Column<string>(type: "TEXT", nullable: false),
                    desired = table.Column<int>(type: "INTEGER", nullable: false),
                    deleting = table.Column<bool>(type: "INTEGER", nullable: false),
                    created_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_deployments", x => x.name);
                });

            migrationBuilder.CreateTable(
                name: "deployment_replicas",
                columns: table => new
                {
                    job_id = table.Column<long>(type: "INTEGER", nullable: false),
                    deployment = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    role = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false),
                    draining = table.Column<bool>(type: "INTEGER", nullable: false),
                    created_at_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_deployment_replicas", x => x.job_id);
                    table.ForeignKey(
                        name: "FK_deployment_replicas_deployments_deployment",
                        column: x => x.deployment,
                        principalTable: "deployments",
                        principalColumn: "name",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_job_events_deployment_id",
                table: "job_events",
                columns: new[] { "deployment", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_deployment_replicas_deployment",
                table: "deployment_replicas",
                column: "deployment");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "deployment_replicas");

            migrationBuilder.DropTable(
                name: "deployments");

            migrationBuilder.DropIndex(
                name: "IX_job_events_deployment_id",
                table: "job_events");

            migrationBuilder.DropColumn(
                name: "deployment",
                table: "job_events");
        }
    }
}
