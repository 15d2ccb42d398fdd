print("semfuse")
