-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE ("p"."state" = ?
  OR "p"."state" <> ?
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."email" NOT LIKE ? ESCAPE '\'
  OR "p"."city" LIKE ? ESCAPE '\'
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."lifetime_value" > CAST(? AS DOUBLE)
  OR "p"."lifetime_value" >= CAST(? AS DOUBLE)
  OR "p"."customer_id" < ?
  OR "p"."customer_id" <= ?
  OR "p"."birth_date" BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" > CAST(? AS TIMESTAMP))
  OR "p"."plan" IN (?, ?)
  OR "p"."customer_id" NOT IN (?, ?, ?)
  OR "p"."phone" IS NULL
  OR "p"."phone" IS NOT NULL
  OR "p"."marketing_consent" = TRUE
  OR "p"."marketing_consent" = FALSE
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" <= CAST(? AS TIMESTAMP)))

-- members
SELECT "p"."customer_id"
FROM "analytics"."customers" AS "p"
WHERE ("p"."state" = ?
  OR "p"."state" <> ?
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."email" NOT LIKE ? ESCAPE '\'
  OR "p"."city" LIKE ? ESCAPE '\'
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."lifetime_value" > CAST(? AS DOUBLE)
  OR "p"."lifetime_value" >= CAST(? AS DOUBLE)
  OR "p"."customer_id" < ?
  OR "p"."customer_id" <= ?
  OR "p"."birth_date" BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" > CAST(? AS TIMESTAMP))
  OR "p"."plan" IN (?, ?)
  OR "p"."customer_id" NOT IN (?, ?, ?)
  OR "p"."phone" IS NULL
  OR "p"."phone" IS NOT NULL
  OR "p"."marketing_consent" = TRUE
  OR "p"."marketing_consent" = FALSE
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" <= CAST(? AS TIMESTAMP)))
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "CA"
2: string "CA"
3: string "%smith%"
4: string "%smith%"
5: string "San%"
6: string "%.org"
7: string "10"
8: string "10.5"
9: int64 100
10: int64 100
11: string "1980-01-01"
12: string "1989-12-31"
13: string "2024-01-01 00:00:00"
14: string "2024-12-31 23:59:59"
15: string "pro"
16: string "enterprise"
17: int64 1
18: int64 2
19: int64 3
20: string "2025-05-31 12:00:00"
21: string "2025-06-30 12:00:00"
