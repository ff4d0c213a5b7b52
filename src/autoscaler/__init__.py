"""node-fleet: the autoscaler for K3s workers on EC2."""
