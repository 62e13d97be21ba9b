-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE (((("p"."state" = ?
              AND "p"."plan" = ?)
          AND (SELECT COALESCE(SUM("r1"."amount"), 0)
                FROM "orders" AS "r1"
                WHERE "r1"."customer_id" = "p"."customer_id") > ?)
      OR ("p"."region" = ?
          AND NOT COALESCE((SELECT COALESCE(SUM("r2"."amount"), 0)
                FROM "orders" AS "r2"
                WHERE "r2"."customer_id" = "p"."customer_id") > ?, FALSE)))
  AND NOT COALESCE(("p"."state" = ?
      AND "p"."plan" = ?), FALSE))

-- members
SELECT "p"."customer_id"
FROM "customers" AS "p"
WHERE (((("p"."state" = ?
              AND "p"."plan" = ?)
          AND (SELECT COALESCE(SUM("r1"."amount"), 0)
                FROM "orders" AS "r1"
                WHERE "r1"."customer_id" = "p"."customer_id") > ?)
      OR ("p"."region" = ?
          AND NOT COALESCE((SELECT COALESCE(SUM("r2"."amount"), 0)
                FROM "orders" AS "r2"
                WHERE "r2"."customer_id" = "p"."customer_id") > ?, FALSE)))
  AND NOT COALESCE(("p"."state" = ?
      AND "p"."plan" = ?), FALSE))
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "CA"
2: string "pro"
3: float64 1000
4: string "EMEA"
5: float64 1000
6: string "CA"
7: string "pro"
