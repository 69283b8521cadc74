using AiMass.Registry.Storage;
using Microsoft.EntityFrameworkCore;

namespace AiMass.Registry.Tests;

public sealed class MigrationTests
{
    [Fact]
    public void Migrations_CoverTheModel_NoPendingChanges()
    {
        // A failure means the entities changed without 'dotnet ef migrations add NAME --project src/AiMass.Registry -o Storage/Migrations'.
        using var db = new RegistryDbContext(new DbContextOptionsBuilder<RegistryDbContext>().UseSqlite("Data Source=:memory:").Options);

        Assert.False(db.Database.HasPendingModelChanges());
        Assert.NotEmpty(db.Database.GetMigrations());
    }
}
