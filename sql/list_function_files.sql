-- list_function_files: the text of each file of sql/functions/ this database has, by its
-- sha256 (credits.schema_functions); a file not listed, or listed with another digest, is
-- applied again by the migrations' runner.
SELECT file, sha256
  FROM credits.schema_functions
