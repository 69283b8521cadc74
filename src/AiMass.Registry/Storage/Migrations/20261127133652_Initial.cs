using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AiMass.Registry.Storage.Migrations
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    description = table.Column<string>(type: "TEXT", nullable: true),
                    latest_version = table.Column<int>(type: "INTEGER", nullable: false),
                    version_count = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_models", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "alias_events",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    model_id = table.Column<long>(type: "INTEGER", nullable: false),
                    alias = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    action = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: true),
                    previous_version = table.Column<int>(type: "INTEGER", nullable: true),
                    at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    actor = table.Column<string>(type: "TEXT", nullable: true),
                    reason = table.Column<string>(type: "TEXT", nullable: true),
                    undone_by = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_alias_events", x => x.id);
                    table.ForeignKey(
                        name: "FK_alias_events_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "aliases",
                columns: table => new
                {
                    model_id = table.Column<long>(type: "INTEGER", nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false),
                    updated_at_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_aliases", x => new { x.model_id, x.name });
                    table.ForeignKey(
                        name: "FK_aliases_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "model_tags",
                columns: table => new
                {
                    model_id = table.Column<long>(type: "INTEGER", nullable: false),
                    key = table.Column<string>(type: "TEXT", nullable: false),
                    value = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_model_tags", x => new { x.model_id, x.key });
                    table.ForeignKey(
                        name: "FK_model_tags_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "model_versions",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    model_id = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false),
                    status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    status_message = table.Column<string>(type: "TEXT", nullable: true),
                    format = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    digest = table.Column<string>(type: "TEXT", maxLength: 71, nullable: false),
                    size = table.Column<long>(type: "INTEGER", nullable: false),
                    signature_json = table.Column<string>(type: "TEXT", nullable: true),
                    params_json = table.Column<string>(type: "TEXT", nullable: false),
                    metrics_json = table.Column<string>(type: "TEXT", nullable: false),
                    description = table.Column<string>(type: "TEXT", nullable: true),
                    source = table.Column<string>(type: "TEXT", nullable: true),
                    dataset_digest = table.Column<string>(type: "TEXT", nullable: true),
                    parent_model = table.Column<string>(type: "TEXT", nullable: true),
                    parent_version = table.Column<int>(type: "INTEGER", nullable: true),
                    created_at_ms = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at_ms = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_model_versions", x => x.id);
                    table.ForeignKey(
                        name: "FK_model_versions_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "version_tags",
                columns: table => new
                {
                    version_id = table.Column<long>(type: "INTEGER", nullable: false),
                    key = table.Column<string>(type: "TEXT", nullable: false),
                    value = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_version_tags", x => new { x.version_id, x.key });
                    table.ForeignKey(
                        name: "FK_version_tags_model_versions_version_id",
                        column: x => x.version_id,
                        principalTable: "model_versions",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_alias_events_model_id_alias_id",
                table: "alias_events",
                columns: new[] { "model_id", "alias", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_aliases_model_id_version",
                table: "aliases",
                columns: new[] { "model_id", "version" });

            migrationBuilder.CreateIndex(
                name: "IX_aliases_name",
                table: "aliases",
                column: "name");

            migrationBuilder.CreateIndex(
                name: "IX_model_tags_key_value",
                table: "model_tags",
                columns: new[] { "key", "value" });

            migrationBuilder.CreateIndex(
                name: "IX_model_versions_digest",
                table: "model_versions",
                column: "digest");

            migrationBuilder.CreateIndex(
                name: "IX_model_versions_model_id_status_version",
                table: "model_versions",
                columns: new[] { "model_id", "status", "version" });

            migrationBuilder.CreateIndex(
                name: "IX_model_versions_model_id_version",
                table: "model_versions",
                columns: new[] { "model_id", "version" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_model_versions_parent_model_parent_version",
                table: "model_versions",
                columns: new[] { "parent_model", "parent_version" });

            migrationBuilder.CreateIndex(
                name: "IX_models_created_at_ms_id",
                table: "models",
                columns: new[] { "created_at_ms", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_models_name",
                table: "models",
                column: "name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_models_updated_at_ms_id",
                table: "models",
                columns: new[] { "updated_at_ms", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_version_tags_key_value",
                table: "version_tags",
                columns: new[] { "key", "value" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "alias_events");

            migrationBuilder.DropTable(
                name: "aliases");

            migrationBuilder.DropTable(
                name: "model_tags");

            migrationBuilder.DropTable(
                name: "version_tags");

            migrationBuilder.DropTable(
                name: "model_versions");

            migrationBuilder.DropTable(
                name: "models");
        }
    }
}
