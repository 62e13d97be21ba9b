-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE ("p"."state" = ?
  AND "p"."plan" = ?
  AND (SELECT COUNT(*)
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id"
          AND "r1"."ordered_at" >= ? AND "r1"."ordered_at" <= ?
          AND "r1"."channel" = ?) >= ?)

-- members
SELECT "p"."customer_id", "p"."email", "p"."state", "p"."plan"
FROM "customers" AS "p"
WHERE ("p"."state" = ?
  AND "p"."plan" = ?
  AND (SELECT COUNT(*)
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id"
          AND "r1"."ordered_at" >= ? AND "r1"."ordered_at" <= ?
          AND "r1"."channel" = ?) >= ?)
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "CA"
2: string "pro"
3: string "2025-04-01 12:00:00"
4: string "2025-06-30 12:00:00"
5: string "web"
6: int64 2
