-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE ("p"."last_name" = ?
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."city" LIKE ? ESCAPE '\'
  OR "p"."email" NOT LIKE ? ESCAPE '\')

-- members
SELECT "p"."customer_id", "p"."last_name"
FROM "analytics"."customers" AS "p"
WHERE ("p"."last_name" = ?
  OR "p"."email" LIKE ? ESCAPE '\'
  OR "p"."city" LIKE ? ESCAPE '\'
  OR "p"."email" NOT LIKE ? ESCAPE '\')
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "O'Connor\"; DROP TABLE customers; --"
2: string "%50\\%\\_off*[x]?\\\\%"
3: string "São%"
4: string "%\\_%"
