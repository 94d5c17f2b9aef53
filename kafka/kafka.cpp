// placeholder: implemented in this milestone
