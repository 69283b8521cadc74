using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AiMass.Jobs.Storage.Migrations
{
    /// <inheritdoc />
    public partial class SlurmExternalIds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ExternalId",
                table: "job_tasks",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ExternalId",
                table: "job_tasks");
        }
    }
}
