-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE ("p"."last_name" = ?
  OR "p"."email" GLOB ?
  OR "p"."city" GLOB ?
  OR "p"."email" NOT GLOB ?)

-- members
SELECT "p"."customer_id", "p"."last_name"
FROM "customers" AS "p"
WHERE ("p"."last_name" = ?
  OR "p"."email" GLOB ?
  OR "p"."city" GLOB ?
  OR "p"."email" NOT GLOB ?)
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "O'Connor\"; DROP TABLE customers; --"
2: string "*50%_off[*][[]x][?]\\*"
3: string "São*"
4: string "*_*"
