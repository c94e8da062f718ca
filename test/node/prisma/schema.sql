-- The tables of schema.prisma, as prisma migrate would create them.
DROP TABLE IF EXISTS "Post";
DROP TABLE IF EXISTS "User";

CREATE TABLE "User" (
    "id" SERIAL PRIMARY KEY,
    "email" TEXT NOT NULL UNIQUE,
    "worker" INTEGER NOT NULL
);

CREATE TABLE "Post" (
    "id" SERIAL PRIMARY KEY,
    "title" TEXT NOT NULL,
    "views" INTEGER NOT NULL DEFAULT 0,
    "authorId" INTEGER NOT NULL REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");
